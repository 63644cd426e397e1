"""What scripts/serve.sh asks before it starts the API: `python -m org_service.preflight`.

It reads the settings as the app will (environment first, then `.env`, through the same
Settings class), so the script and the app can never disagree on where the embedded data
lives, and prints them as shell assignments for `eval`. A problem is one line on stderr and
exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys

from pydantic import SecretStr, ValidationError, field_validator

from org_service.config import Settings, configuration_problems
from org_service.embedded import DataDirectoryInUse, lock_data_directory


class ServeSettings(Settings):
    """The app's settings, with the token secret optional: serve.sh supplies a development
    one when none is configured."""

    JWT_SECRET_KEY: SecretStr | None = None  # type: ignore[assignment]

    @field_validator("JWT_SECRET_KEY")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:  # type: ignore[override]
        if value is None or not value.get_secret_value():
            return None  # `JWT_SECRET_KEY=` in a .env file: none configured
        return Settings._secret_long_enough(value)


def shell_assignments(settings: ServeSettings) -> str:
    values = {
        "data_dir": str(settings.EMBEDDED_DATA_DIR),
        "secret_configured": "1" if settings.JWT_SECRET_KEY is not None else "",
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def port_problem(host: str, port: int) -> str | None:
    """Bound the way uvicorn binds (SO_REUSEADDR, so a closed socket's TIME_WAIT is no
    obstacle): a failure means another server listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as error:
        return (f"port {port} on {host} is already in use ({error.strerror}; another API "
                "running?): stop it, or set PORT to another port")
    return None


def data_folder_problem(settings: Settings) -> str | None:
    """The app locks the folder for the life of its embedded database; taken for a moment
    here, the lock tells at once that another instance holds it."""
    try:
        os.close(lock_data_directory(str(settings.embedded_storage_path)))
    except DataDirectoryInUse as error:
        return str(error)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m org_service.preflight")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        settings = ServeSettings()
    except ValidationError as error:
        for line in configuration_problems(error):
            print(f"configuration error: {line}", file=sys.stderr)
        return 1
    problem = port_problem(args.host, args.port)
    if problem is None and not settings.MONGODB_URL:
        problem = data_folder_problem(settings)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    sys.stdout.write(shell_assignments(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
