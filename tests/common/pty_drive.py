"""Runs a program on a new pseudo-terminal and drives it like a person at the keyboard.

    python3 pty_drive.py STEPS_JSON PROGRAM [ARG...]

STEPS_JSON is a list of steps: ["expect", TEXT] waits (10 s at most) until TEXT has appeared in
what the program printed since the last expect; ["send", TEXT] types TEXT (escapes such as
"\\u0003" for Ctrl-C work); ["sleep", SECONDS]. Prints one JSON object: the exit status (or
the signal as a negative number), everything the program printed, whether the terminal had
echo on after it exited, and the step that timed out, if any. Used by tests/commands/prompt.rs.
"""
import json
import os
import pty
import select
import sys
import termios
import time


def main():
    steps = json.loads(sys.argv[1])
    argv = sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    out = b""
    seen = 0
    failed = None

    def pump(deadline):
        nonlocal out
        while True:
            left = deadline - time.time()
            if left <= 0:
                return False
            r, _, _ = select.select([fd], [], [], min(left, 0.1))
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return None
                if not chunk:
                    return None
                out += chunk
                return True

    for i, (kind, arg) in enumerate(steps):
        if kind == "expect":
            deadline = time.time() + 10
            want = arg.encode()
            while want not in out[seen:]:
                got = pump(deadline)
                if not got:
                    failed = i
                    break
            if failed is not None:
                break
            seen = out.index(want, seen) + len(want)
        elif kind == "send":
            os.write(fd, arg.encode())
        elif kind == "sleep":
            time.sleep(arg)
    # The rest of its output, its end, then the terminal's settings as it left them.
    deadline = time.time() + 30
    while pump(deadline):
        pass
    _, status = os.waitpid(pid, 0)
    try:
        echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        echo = None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    print(json.dumps({
        "status": code,
        "output": out.decode("utf-8", "replace"),
        "echo": echo,
        "timed_out_at": failed,
    }))


main()
