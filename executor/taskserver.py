"""burst's task server: imports a job script's modules once, then runs each
task in a forked child exactly as a fresh interpreter would run the script.

Started by a burst worker, under the run's interpreter, as

    python taskserver.py SCRIPT PRELOAD

with its control socket on file descriptor 3. PRELOAD is "auto" (the
modules the script imports at its top level, found by parsing it, never by
running it), "none", or a comma-separated list of module names.

Control protocol: frames of a 4-byte big-endian length and a JSON object,
both ways. The worker sends {"op": "run", "script", "cwd", "setenv",
"unsetenv"} (the task's environment as changes to the server's) with the
task's stdin, stdout and stderr attached as SCM_RIGHTS, {"op": "ping"} and
{"op": "exit"}; the server answers {"op": "ready"} once after importing,
{"op": "started", "pid"} and {"op": "exited", "pid", "code" | "signal",
"maxrss_kb"} for each task, {"op": "pong"} and {"op": "error", "message"}.
The server exits when its socket closes.

The server never starts a thread and never runs task code itself; the
child's process group is its own, so the worker can kill a task whole
without touching the server.
"""
import os
import sys

CTRL_FD = 3
MAX_FRAME = 64 << 20
SERVER_PID = os.getpid()

import ast  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402


def top_level_imports(path):
    """Module names imported at the top level of the script at path (also
    inside top-level if/try/with blocks, never inside functions or
    classes), in order, found by parsing it. A script that does not parse
    gives none: its tasks report the error as a fresh interpreter would."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except Exception:
        return []
    names = []

    def visit(stmts):
        for s in stmts:
            if isinstance(s, ast.Import):
                names.extend(a.name for a in s.names)
            elif isinstance(s, ast.ImportFrom):
                if s.level == 0 and s.module:
                    names.append(s.module)
                    names.extend(s.module + "." + a.name for a in s.names if a.name != "*")
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(s, field, None)
                    if isinstance(sub, list) and not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        visit(sub)
                if isinstance(s, ast.ExceptHandler):
                    visit(s.body)

    visit(tree.body)
    seen = set()
    return [n for n in names if not (n in seen or seen.add(n))]


def preload(script, spec):
    """Imports the modules spec names; returns (loaded, failed). An import
    that fails is left for the task to fail on, with its own message."""
    import importlib

    if spec == "none":
        return [], []
    if spec == "auto":
        names = top_level_imports(script)
        # "from pkg import name" lists pkg.name, which is a module only
        # sometimes: such names are tried quietly.
        optional = {n for n in names if "." in n and n.rsplit(".", 1)[0] in names}
    else:
        names = [n for n in spec.split(",") if n]
        optional = set()
    loaded, failed = [], []
    for name in names:
        if name in sys.modules:
            loaded.append(name)
            continue
        if name in optional:
            parent, _, attr = name.rpartition(".")
            if parent in sys.modules and hasattr(sys.modules[parent], attr) and not _is_module(getattr(sys.modules[parent], attr)):
                continue
        try:
            importlib.import_module(name)
            loaded.append(name)
        except BaseException as e:  # SystemExit and KeyboardInterrupt at import too
            if name not in optional:
                failed.append("%s: %s: %s" % (name, type(e).__name__, e))
    return loaded, failed


def _is_module(obj):
    import types

    return isinstance(obj, types.ModuleType)


def thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


class Conn:
    """Frames over the control socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.fds = []

    def send(self, msg):
        data = json.dumps(msg).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def _fill(self):
        fdsize = struct.calcsize("i")
        data, anc, flags, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(8 * fdsize))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(cdata) // fdsize
                self.fds.extend(struct.unpack("%di" % n, cdata[: n * fdsize]))
        if flags & getattr(socket, "MSG_CTRUNC", 0):
            raise OSError("control message truncated")
        if not data:
            raise EOFError
        self.buf += data

    def recv(self):
        """Returns (message, fds) for the next frame; EOFError when the
        worker has gone."""
        while len(self.buf) < 4:
            self._fill()
        (n,) = struct.unpack(">I", self.buf[:4])
        if n > MAX_FRAME:
            raise ValueError("frame of %d bytes" % n)
        while len(self.buf) < 4 + n:
            self._fill()
        data, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
        fds, self.fds = self.fds, []
        msg = json.loads(data.decode())
        if not isinstance(msg, dict):
            raise ValueError("frame is not an object")
        return msg, fds


def close_fds(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def find_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except Exception:
        return None


_prctl = None


def set_pdeathsig():
    """Has the kernel kill this child when the server dies."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != SERVER_PID:
        os._exit(1)


class Server:
    def __init__(self, conn, script):
        self.conn = conn
        self.script = script
        self.code = None  # the script compiled once, when it compiles

    def serve(self):
        while True:
            try:
                msg, fds = self.conn.recv()
            except EOFError:
                return
            op = msg.get("op")
            if op == "run":
                try:
                    self.run(msg, fds)  # returns only in the server
                except EOFError:
                    return  # the worker went while the task ran
            else:
                close_fds(fds)
                if op == "ping":
                    self.conn.send({"op": "pong"})
                elif op == "exit":
                    return
                else:
                    self.conn.send({"op": "error", "message": "unknown op %r" % (op,)})

    def run(self, msg, fds):
        if len(fds) != 3:
            close_fds(fds)
            self.conn.send({"op": "error", "message": "run needs 3 descriptors, got %d" % len(fds)})
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            close_fds(fds)
            self.conn.send({"op": "error", "message": "fork: %s" % e})
            return
        if pid == 0:
            child(self.conn, msg, fds, self.code)  # never returns
        close_fds(fds)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it already, or is gone
        self.conn.send({"op": "started", "pid": pid})
        self.wait(pid)

    def wait(self, pid):
        """Waits for the child, answering pings meanwhile."""
        pidfd = -1
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = -1
        try:
            delay = 0.001
            while True:
                rl = [self.conn.sock] + ([pidfd] if pidfd >= 0 else [])
                if self.conn.buf:
                    ready = [self.conn.sock]
                else:
                    ready, _, _ = select.select(rl, [], [], None if pidfd >= 0 else delay)
                    delay = min(delay * 2, 0.05)
                if self.conn.sock in ready:
                    try:
                        msg, fds = self.conn.recv()
                    except EOFError:
                        # The worker is gone: so is its task.
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
                        raise
                    close_fds(fds)
                    if msg.get("op") == "ping":
                        self.conn.send({"op": "pong"})
                    elif msg.get("op") == "run":
                        self.conn.send({"op": "error", "message": "a task is running"})
                wpid, status, ru = os.wait4(pid, os.WNOHANG)
                if wpid == pid:
                    break
        finally:
            if pidfd >= 0:
                os.close(pidfd)
        out = {"op": "exited", "pid": pid, "maxrss_kb": ru.ru_maxrss}
        if os.WIFSIGNALED(status):
            out["signal"] = os.WTERMSIG(status)
        else:
            out["code"] = os.WEXITSTATUS(status)
        self.conn.send(out)


# --- in the child -----------------------------------------------------------


def child(conn, msg, fds, code):
    """Becomes the task: its own process group, stdio, directory and
    environment; runs the script as __main__, and ends as the interpreter
    ends a script (see finish)."""
    try:
        os.setpgid(0, 0)
        set_pdeathsig()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        close_fds([fd for fd in fds if fd > 2])
        conn.sock.close()
        os.chdir(msg["cwd"])
        for k in msg.get("unsetenv") or []:
            os.environb.pop(base64.b64decode(k), None)
        for kv in msg.get("setenv") or []:
            k, _, v = base64.b64decode(kv).partition(b"=")
            os.environb[k] = v
        reset_stdio()
        reseed()
        import atexit

        # Handlers registered by modules as the server imported them are
        # the server's: a task runs only those registered by itself.
        atexit._clear()
        script = msg["script"]
    except BaseException:
        import traceback

        try:
            os.write(2, ("burst task server: setting up the task: " + traceback.format_exc()).encode())
        finally:
            os._exit(70)
    try:
        main, status, sigint = run_main(script, code)
        finish(main, status, sigint)
    finally:
        os._exit(70)  # only if finishing itself failed


def exit_status(e):
    """The exit status of a script ended by SystemExit e, printing its
    message as the interpreter does."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF if -(1 << 63) <= code < (1 << 63) else 255
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def flush_std():
    """Flushes stdout and stderr; False when stdout could not be."""
    ok = True
    for s in (sys.stdout, sys.stderr):
        if s is None:
            continue
        try:
            s.flush()
        except Exception as e:
            if s is sys.stdout:
                ok = False
                try:
                    sys.stderr.write("Exception ignored in: %r\n%s: %s\n" % (s, type(e).__name__, e))
                except Exception:
                    pass
    return ok


def finish(main, status, sigint):
    """Ends the task as the interpreter ends a script, in its order: waits
    for non-daemon threads, runs atexit handlers, flushes stdout (status
    120 when that fails), releases the script's own objects (so their
    files are flushed and closed and their __del__ methods run), and exits;
    by SIGINT after an uncaught KeyboardInterrupt. The teardown of every
    imported module, which costs a fresh interpreter most of its exit and
    shows nothing, is skipped."""
    import atexit
    import gc

    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException:
            pass
    atexit._run_exitfuncs()
    if not flush_std():
        status = 120
    try:
        main.__dict__.clear()
        gc.collect()
    except BaseException:
        pass
    flush_std()
    if sigint:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status)


def reset_stdio():
    """New sys.stdin, sys.stdout and sys.stderr on descriptors 0, 1 and 2,
    made as the interpreter makes them at start-up."""
    import io

    # python -u (or PYTHONUNBUFFERED) shows in the server's own stdout.
    buffered = not getattr(sys.__stdout__, "write_through", False)
    for fd, name, attr in ((0, "<stdin>", "stdin"), (1, "<stdout>", "stdout"), (2, "<stderr>", "stderr")):
        old = getattr(sys, "__" + attr + "__", None) or getattr(sys, attr)
        write = fd > 0
        raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
        if buffered or not write:
            buf = io.BufferedWriter(raw) if write else io.BufferedReader(raw)
        else:
            buf = raw
        try:
            raw.name = name
        except Exception:
            pass
        tty = raw.isatty()
        stream = io.TextIOWrapper(
            buf,
            encoding=getattr(old, "encoding", None),
            errors=getattr(old, "errors", None),
            newline="\n",
            line_buffering=buffered and (tty or fd == 2),
            write_through=not buffered,
        )
        setattr(sys, attr, stream)
        setattr(sys, "__" + attr + "__", stream)


def reseed():
    """Random state that a fresh process would draw anew: numpy's global
    generator was seeded once, in the server (random's own is reseeded by
    os.fork)."""
    nr = sys.modules.get("numpy.random")
    if nr is not None:
        try:
            nr.seed()
        except Exception:
            pass


def run_main(path, code):
    """Runs the script as __main__; returns the module, the exit status
    and whether a KeyboardInterrupt ended it. An uncaught exception is
    reported as the interpreter reports it, without the server's frames."""
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = builtins
    main.__package__ = None
    main.__spec__ = None
    try:
        from importlib.machinery import SourceFileLoader

        main.__loader__ = SourceFileLoader("__main__", path)
    except Exception:
        pass
    sys.modules["__main__"] = main
    sys.argv = [path]
    try:
        if code is None:
            try:
                with open(path, "rb") as f:
                    src = f.read()
            except OSError as e:
                prog = (getattr(sys, "orig_argv", None) or [sys.executable])[0]
                sys.stderr.write("%s: can't open file %r: [Errno %d] %s\n" % (prog, path, e.errno, e.strerror))
                return main, 2, False
            code = compile(src, path, "exec", dont_inherit=True)
        exec(code, main.__dict__)
        return main, 0, False
    except SystemExit as e:
        return main, exit_status(e), False
    except BaseException as e:
        tb = e.__traceback__
        # Drop this function's frame (and compile's): what is left starts in
        # the script, as in a fresh interpreter.
        while tb is not None and tb.tb_frame.f_code is run_main.__code__:
            tb = tb.tb_next
        e.__traceback__ = tb
        try:
            sys.excepthook(type(e), e, tb)
        except BaseException:
            pass
        return main, 1, isinstance(e, KeyboardInterrupt)


def compile_script(path):
    """The script compiled once, or None when compiling it fails or warns:
    then each child compiles it again, and reports the error or warning on
    its own stderr, as a fresh interpreter would."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec", dont_inherit=True)
        return None if w else code
    except BaseException:
        return None


def main():
    global _prctl
    script, spec = sys.argv[1], sys.argv[2]
    _prctl = find_prctl()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, CTRL_FD)
    conn = Conn(sock)
    # As for "python SCRIPT": the script's directory first on the path.
    sys.path[0] = os.path.dirname(os.path.realpath(script))
    sys.argv = [script]
    loaded, failed = preload(script, spec)
    code = compile_script(script)
    import gc

    # What the server holds now is never freed: keep the collector of every
    # child off it, or its passes would copy every page they touch.
    if hasattr(gc, "freeze"):
        gc.collect()
        gc.freeze()
    srv = Server(conn, script)
    srv.code = code
    conn.send({"op": "ready", "pid": os.getpid(), "preloaded": loaded, "failed": failed, "threads": thread_count()})
    srv.serve()


if __name__ == "__main__":
    main()
