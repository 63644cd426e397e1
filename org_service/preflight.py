"""What scripts/serve.sh asks before it starts the API: `python -m org_service.preflight`.

It reads the settings as the app will (environment first, then `.env`, through the same
Settings class), so the script and the app can never disagree on where the embedded data
lives, and prints them as shell assignments for `eval`. A problem is one line on stderr and
exit status 1, never a traceback.
"""

from __future__ import annotations

import shlex
import sys

from pydantic import SecretStr, ValidationError, field_validator

from org_service.config import Settings


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


def describe_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid setting {field} in the environment or .env: {first['msg']}{more}"


def shell_assignments(settings: ServeSettings) -> str:
    values = {
        "data_dir": str(settings.EMBEDDED_DATA_DIR),
        "embedded": "" if settings.MONGODB_URL else "1",
        "secret_configured": "1" if settings.JWT_SECRET_KEY is not None else "",
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def main() -> int:
    try:
        settings = ServeSettings()
    except ValidationError as error:
        print(describe_problem(error), file=sys.stderr)
        return 1
    sys.stdout.write(shell_assignments(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
