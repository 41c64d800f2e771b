"""The web console at `/console`: pages a person uses in a browser to manage their own
account, keys, characters, chats, images and webhooks (and, for admins, the server).

Server-rendered Jinja templates and plain HTML forms (POST, then a redirect), so every page
works without JavaScript; one small script streams the chat playground. The routes are as
thin as the API's: each calls the same services the dialects call, with the signed-in
account, and adds no rule of its own."""
