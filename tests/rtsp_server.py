"""A real RTSP camera for the tests: GStreamer's gst-rtsp-server serving an H.264 MP4 in real time.

Run by Debian's own Python (``/usr/bin/python3``: python3-gi and gir1.2-gst-rtsp-server-1.0 are
Debian packages, not in the project's venv) as a subprocess of the test::

    /usr/bin/python3 tests/rtsp_server.py CLIP.mp4 --port 8554 --path /cam [--user U --password P]

Each client gets its own pipeline (the media is not shared), which plays the clip from its start
at its own pace (the RTP payloader's sink syncs on the clock, like a camera's live encoder), then
ends the stream. The clip's H.264 is sent as it is: no decoding, no re-encoding. With ``--user``
and ``--password`` the server demands HTTP basic auth of every request, as IP cameras do, and
answers ``401 Unauthorized`` to anything else. Prints ``ready rtsp://127.0.0.1:PORT/PATH`` on
stdout once it listens, then ``client connected`` for each connection and ``media playing``
each time an (authorised) client makes the clip start; SIGTERM or SIGINT ends it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer


def pipeline(clip: str) -> str:
    """The media factory's launch line: the MP4's H.264 packetised into RTP, at the clip's pace.

    h264parse puts the SPS/PPS in band before every key frame, as cameras send them, so a
    client could join at any key frame. Not rtph264pay's own ``config-interval=-1``: it repeats
    them before every *slice* of a key frame, and FFmpeg then splits a key frame of several
    slices (libx264 cuts one per thread) in two, losing the first slices of every picture."""
    location = clip.replace("\\", "\\\\").replace('"', '\\"')
    return (f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
            f"! rtph264pay name=pay0 pt=96 )")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", help="an MP4 holding one H.264 video stream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args.clip))
    factory.set_shared(False)
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        # only the user's role may see (access) and play (construct) this path
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(args.user, "media.factory.access", True)
        permissions.add_permission_for_role(args.user, "media.factory.construct", True)
        factory.set_permissions(permissions)
    # what the test synchronises on: a client's TCP connection, and a client let in to play
    # (the media is built after authentication, and the clip starts playing then)
    server.connect("client-connected", lambda *_: print("client connected", flush=True))
    factory.connect("media-configure", lambda *_: print("media playing", flush=True))
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
