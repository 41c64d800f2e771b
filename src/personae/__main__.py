from personae.cli.main import app

app(prog_name="personae")
