#!/usr/bin/python3
"""SMTP server for the email channel's tests (tests/tests/email.rs): aiosmtpd on 127.0.0.1,
AUTH with one login, STARTTLS when given a certificate, delivering each recipient's copy into
the Dovecot maildir ROOT/RECIPIENT/ (new/), owned by the mail user. Runs until killed."""

import argparse
import os
import signal
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Deliver:
    def __init__(self, root, uid, gid):
        self.root, self.uid, self.gid = root, uid, gid
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
        trace = (
            f"X-Test-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Test-Auth-Login: {login}\r\n"
            f"X-Test-TLS: {'yes' if session.ssl else 'no'}\r\n"
        ).encode()
        for rcpt in envelope.rcpt_tos:
            box = os.path.join(self.root, rcpt.lower())
            for d in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(box, d), exist_ok=True)
                os.chown(os.path.join(box, d), self.uid, self.gid)
            os.chown(box, self.uid, self.gid)
            self.n += 1
            name = f"{int(time.time())}.smtpd{os.getpid()}_{self.n}.localhost"
            tmp = os.path.join(box, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(trace + envelope.original_content)
            os.chown(tmp, self.uid, self.gid)
            os.rename(tmp, os.path.join(box, "new", name))
        return "250 delivered"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--uid", type=int, required=True)
    p.add_argument("--gid", type=int, required=True)
    p.add_argument("--login", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()

    def auth(server, session, envelope, mechanism, data):
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == a.login
            and data.password.decode() == a.password
        )
        return AuthResult(success=ok, auth_data=data)

    kw = {}
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        kw = {"tls_context": ctx, "require_starttls": True}
    c = Controller(
        Deliver(a.root, a.uid, a.gid),
        hostname="127.0.0.1",
        port=a.port,
        authenticator=auth,
        auth_require_tls=bool(a.cert),
        auth_required=True,
        **kw,
    )
    c.start()
    print("smtpd ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    c.stop()


if __name__ == "__main__":
    main()
