"""Run Autobahn|Testsuite's ``wstest`` bound to the loopback interface only.

Python 2 script: run it with the interpreter of the virtualenv made by
setup.sh, with wstest's own arguments::

    .autobahn-venv/py27/bin/python launch_wstest.py -m fuzzingserver -s spec.json

``wstest -m fuzzingserver`` listens on all interfaces whatever its spec says
(autobahn's ``listenWS`` passes ``interface=''``), and its embedded web server
on port 8080 too. Twisted's ``listenTCP``/``listenSSL`` are patched before
wstest's main runs so that any listen on "all interfaces" binds 127.0.0.1
instead. (run.py also passes ``--webport 0`` to turn the web server off.)
"""

import sys

from twisted.internet import reactor

LOOPBACK = "127.0.0.1"
_ANY = ("", "0.0.0.0", "::")

_listenTCP = reactor.listenTCP
_listenSSL = reactor.listenSSL


def _loopback(interface):
    return LOOPBACK if interface in _ANY else interface


def listenTCP(port, factory, backlog=50, interface=""):
    return _listenTCP(port, factory, backlog, _loopback(interface))


def listenSSL(port, factory, contextFactory, backlog=50, interface=""):
    return _listenSSL(port, factory, contextFactory, backlog, _loopback(interface))


reactor.listenTCP = listenTCP
reactor.listenSSL = listenSSL


def main():
    from autobahntestsuite.wstest import run

    sys.argv[0] = "wstest"
    return run()


if __name__ == "__main__":
    sys.exit(main())
