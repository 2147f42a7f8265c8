"""Runs kosoku (the Autobahn WebSocket test cases) with one fix to the harness itself.

kosoku 0.1.0 hands messages to the py2-era case code as `str` (text ones always, binary ones
at times); cases 12.x and 13.x (permessage-deflate) hash them with `hashlib.sha1().update` and
decode them, which want bytes, so those cases ERROR ("Strings must be encoded before hashing")
or miscount whatever the server does. Here their `onMessage` gets the message's bytes (UTF-8
for text, latin-1 for binary, as kosoku's own shims read py2 strings): the very bytes the case
sent, so an echo matches exactly when it is the same message. Nothing else changes; the arguments are kosoku's.
"""

import sys

import kosoku._caseindex

kosoku._caseindex.initialize_shims()
import case12_x_x  # noqa: E402  (importable once the shims are on sys.path)


def _bytes_message(on_message):
    def wrapped(self, msg, binary):
        if isinstance(msg, str):
            # py2's str was bytes: a text message's bytes are its UTF-8, a binary one's its latin-1.
            msg = msg.encode("latin-1" if binary else "utf-8")
        return on_message(self, msg, binary)

    return wrapped


for _case in case12_x_x.Case12_X_X + case12_x_x.Case13_X_X:
    _case.onMessage = _bytes_message(_case.onMessage)

from kosoku._cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
