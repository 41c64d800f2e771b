"""Accounts a person manages: sign-up, sign-in to the console, sessions, passwords and
invites. The console (personae.console) is its only caller; the rules live here.

A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256, so
a copy of the table signs nobody in. Signing out or changing the password deletes rows:
sessions end at once, not at their expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from personae.account import passwords
from personae.account.repository import AccountRepository
from personae.account.service import AccountService
from personae.db.base import utcnow
from personae.errors import Forbidden, InvalidRequest, Unauthorized
from personae.models import Account, ConsoleSession, Invite

SignupMode = Literal["open", "invite", "closed"]


@dataclass(frozen=True)
class SignedIn:
    account: Account
    token: str  # the cookie's value; only its hash is stored
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SignIn:
    def __init__(self, session: AsyncSession, session_lifetime: timedelta) -> None:
        self.repo = AccountRepository(session)
        self.accounts = AccountService(session)
        self.lifetime = session_lifetime

    async def sign_up(
        self,
        mode: SignupMode,
        username: str,
        email: str,
        password: str,
        invite: str | None = None,
    ) -> SignedIn:
        """A new account on the free plan, with a password and no API key yet, signed in."""
        if mode == "closed":
            raise Forbidden("Sign-up is closed on this server: ask its operator for an account")
        if not email:
            raise InvalidRequest("email: required", details={"field": "email"})
        passwords.check_strength(password)
        account = await self.accounts.new_account(username, email)
        if mode == "invite" and not (
            invite and await self.repo.claim_invite(invite.strip(), account.id, utcnow())
        ):
            raise Forbidden("Sign-up needs an invite code, and this one is unknown or used",
                            details={"field": "invite"})  # fmt: skip
        account.password_hash = passwords.hash_password(password)
        return await self._start(account)

    async def sign_in(self, login: str, password: str) -> SignedIn:
        """Every failure looks the same, and takes as long (a decoy hash is verified)."""
        account = await self.repo.get_by_login(login.strip()) if login.strip() else None
        stored = account.password_hash if account else None
        if not passwords.verify(stored, password) or account is None or stored is None:
            raise Unauthorized("Wrong username or password")
        if passwords.needs_rehash(stored):
            account.password_hash = passwords.hash_password(password)
        return await self._start(account)

    async def _start(self, account: Account) -> SignedIn:
        now = utcnow()
        token = secrets.token_urlsafe(32)
        expires = now + self.lifetime
        await self.repo.delete_expired_sessions(now)
        await self.repo.add(
            ConsoleSession(
                token_hash=token_hash(token), account_id=account.id, created_at=now,
                expires_at=expires,
            )
        )  # fmt: skip
        return SignedIn(account, token, expires)

    async def account_of(self, token: str) -> Account | None:
        """The signed-in account of a session cookie, or None (unknown or expired)."""
        return await self.repo.session_account(token_hash(token), utcnow())

    async def sign_out(self, token: str) -> None:
        await self.repo.delete_sessions(token_hash=token_hash(token))

    async def change_password(self, account: Account, current: str, new: str, token: str) -> None:
        """Checks the current password; ends every other session of the account."""
        if not passwords.verify(account.password_hash, current):
            raise InvalidRequest("current_password: wrong password",
                                 details={"field": "current_password"})  # fmt: skip
        passwords.check_strength(new)
        account.password_hash = passwords.hash_password(new)
        await self.repo.session.flush()
        await self.repo.delete_sessions(account_id=account.id, keep=token_hash(token))

    async def set_password(self, account: Account, new: str) -> None:
        """The operator's reset (`personae accounts password`): every session ends."""
        passwords.check_strength(new)
        account.password_hash = passwords.hash_password(new)
        await self.repo.session.flush()
        await self.repo.delete_sessions(account_id=account.id)

    async def create_invite(self, by: Account | None = None) -> Invite:
        invite = Invite(
            code=secrets.token_urlsafe(12), created_by=by.id if by else None, created_at=utcnow()
        )
        await self.repo.add(invite)
        return invite

    async def invites(self) -> list[Invite]:
        return list(await self.repo.list_invites())
