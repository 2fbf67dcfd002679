#!/usr/bin/env python3
"""tty_drive.py - run a command on a pseudo-terminal and type at it, as a
person at a terminal would (issue 12, items 2 and 11).

usage: tty_drive.py STEP... -- COMMAND [ARG...]
  expect:TEXT  wait (at most 20 s) until TEXT has appeared in the output
  send:TEXT    type TEXT (Python escapes: \\n, \\x04 for Ctrl-D, \\x03 for Ctrl-C)
Writes everything the command printed on the terminal to stdout, then a last
line "echo:on" or "echo:off" (the terminal's echo flag once the command has
ended) and exits with the command's status (128+N if killed by signal N).
"""
import os
import pty
import select
import sys
import termios
import time


def main():
    sep = sys.argv.index("--")
    steps, cmd = sys.argv[1:sep], sys.argv[sep + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    seen = b""

    def pump(timeout):
        nonlocal seen
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False
        if not data:
            return False
        seen += data
        return True

    for step in steps:
        kind, _, text = step.partition(":")
        text = text.encode().decode("unicode_escape").encode("latin-1")
        if kind == "expect":
            deadline = time.time() + 20
            while text not in seen and time.time() < deadline:
                if not pump(0.1):
                    break
            if text not in seen:
                sys.stdout.buffer.write(seen)
                print("\ntty_drive: never saw %r" % text)
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return 99
        elif kind == "send":
            time.sleep(0.2)  # let the command reach its read
            os.write(fd, text)
        else:
            print("tty_drive: bad step %r" % step)
            return 98
    deadline = time.time() + 30
    while time.time() < deadline and pump(0.1):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        done, status = os.waitpid(pid, os.WNOHANG)
    if not done:
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    while pump(0.05):
        pass
    echo = termios.tcgetattr(fd)[3] & termios.ECHO
    sys.stdout.buffer.write(seen)
    print("\necho:%s" % ("on" if echo else "off"))
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
