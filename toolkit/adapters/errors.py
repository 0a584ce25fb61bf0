"""Turn a failure to reach or query a target into one line: what, where, why, and what to try."""

from __future__ import annotations

from toolkit.domain.errors import UnreachableError

# Users come from the inventory; passwords never do (toolkit/adapters/secrets.py): they come from a
# TOOLKIT_*_PASSWORD variable, else a file in the secrets directory.
AUTH_HINT = (
    "check the user in the inventory and its password (the TOOLKIT_*_PASSWORD variable, else the file "
    "in --secrets or $TOOLKIT_SECRETS_DIR)"
)


class TargetError(UnreachableError):
    """A target could not be checked (exit 3): refused, timed out, authentication, name resolution."""

    def __init__(self, target: str, during: str, cause: str, hint: str) -> None:
        self.target = target
        self.during = during
        self.cause = cause
        self.hint = hint
        super().__init__(f"{target}: {cause} during {during}; {hint}")

    @classmethod
    def from_exception(cls, target: str, during: str, exc: BaseException, timeout: float) -> TargetError:
        """Classify a driver exception by its message (drivers raise one class for all of these)."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        low = text.lower()
        if "password authentication failed" in low or "authentication failed" in low or "noauth" in low:
            return cls(target, during, "authentication failed", AUTH_HINT)
        if "could not translate host name" in low or "name or service not known" in low:
            return cls(target, during, "host name does not resolve", "check the address in the inventory")
        if "connection refused" in low:
            return cls(target, during, "connection refused", "is the service running and listening there?")
        if "timeout" in low or "timed out" in low:
            return cls(
                target, during, f"timed out after {timeout:g} s", "is the server frozen or overloaded?"
            )
        return cls(target, during, text, "see the server's log")
