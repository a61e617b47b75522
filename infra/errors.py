"""Every exception xero-mirror raises on purpose, in one tree.

Each concrete exception lives beside the code that raises it; its base says what kind of
failure it is, so a caller can catch a kind without knowing every module:

    MirrorError                    the root: anything raised on purpose
    ├── InputError                 what a caller sent is wrong; answered 4xx, never retried
    │     webhook.payload.BadPayload, views.api.ApiError, services.oauth.BadIdToken,
    │     views.saved_views.UnknownView / UnknownType,
    │     views.widget.BadEmbedToken / EmbedDisabled
    ├── NotFound                   what the caller named is not there
    │     store.connections.NoConnection, store.records.NotConnected,
    │     store.workspaces.UnknownKey
    ├── Conflict                   the state of things forbids the request
    │     store.lifecycle.LifecycleError (TenantTaken, WorkspaceTaken, NothingPending,
    │       NothingToRemove, PendingElsewhere), store.workspaces.AlreadyRevoked
    ├── StorageError               our database, Redis or sealed secrets would not serve
    │     webhook.batcher.NotStored, store.secrets.SecretsError
    ├── UpstreamError              Xero answered badly or not at all
    │     xero.client.XeroError (XeroRateLimited, XeroUnavailable, XeroUnauthorized,
    │       ConnectionRevoked, XeroNotFound, XeroRequestError),
    │     xero.identity.IdentityError (IdentityRefused, IdentityUnavailable),
    │     xero.translate.TranslationError
    ├── Throttled                  our own rate governor says wait (worker.governor.Throttled)
    ├── ConfigError                a setting is missing, malformed or too weak: the process
    │                              will not start (infra.settings)
    └── OperationError             an operator's or admin's request failed
          ops.commands.OpsError, services.connection.ConnectError (StateRefused,
          ConsentFailed, NothingGranted, ChoiceExpired, NoneChosen)

Where an exception was also a `ValueError` or `LookupError` before this tree existed, it still
is (its class names both bases), so no `except` anywhere changed meaning.
"""
from __future__ import annotations


class MirrorError(Exception):
    """The root of every exception xero-mirror raises on purpose."""


class InputError(MirrorError):
    """What a caller sent is wrong: refused with a 4xx answer, never retried."""


class NotFound(MirrorError):
    """What the caller named is not there."""


class Conflict(MirrorError):
    """The state of things forbids the request (already taken, nothing pending)."""


class StorageError(MirrorError):
    """Our database, Redis or sealed secrets would not serve the request."""


class UpstreamError(MirrorError):
    """Xero answered badly or not at all."""


class ConfigError(MirrorError, ValueError):
    """A setting is missing, malformed or too weak for where it runs (infra.settings): the
    process refuses to start, and its message is one line that names the variable."""


class OperationError(MirrorError):
    """An operator's or admin's request failed (ops commands, connecting)."""
