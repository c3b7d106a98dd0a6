"""Request and response schemas: the single source of validation and of the OpenAPI document."""
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from backend.models.status import DeploymentStatus
from backend.rules import (
    MAX_TAGS,
    check_branch,
    check_command,
    check_commit,
    check_framework,
    check_github_url,
    check_health_path,
    check_name,
    check_tags,
)

Name = Annotated[str, AfterValidator(check_name)]
GithubUrl = Annotated[str, AfterValidator(check_github_url)]
Branch = Annotated[str, AfterValidator(check_branch)]
FrameworkKey = Annotated[str, AfterValidator(check_framework)]
Tags = Annotated[list[str], Field(max_length=MAX_TAGS), AfterValidator(check_tags)]
Command = Annotated[str, AfterValidator(check_command)]
Commit = Annotated[str, AfterValidator(check_commit)]
HealthPath = Annotated[str, AfterValidator(check_health_path)]
# Bounds of the database's id columns: larger numbers in a query would overflow them (a 500 instead of a page).
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1
AppPort = Annotated[int, Field(ge=1024, le=65535, description="The port the app listens on (1024-65535)")]
EnvValues = Annotated[dict[str, str], Field(description="Environment variables; values never come back")]


class AppSettings(BaseModel):
    """How the app is built and run; each replaces its part of the framework's recipe."""

    build_command: Command | None = Field(None, description="Run in the source directory instead of the "
                                          "recipe's build step; one command with arguments, no shell operators")
    start_command: Command | None = Field(None, description="The production server; $PORT and $HOST are filled in")
    port: AppPort | None = None
    health_check_path: HealthPath | None = Field(None, description="GET here must answer 2xx/3xx (default /)")


class StrictModel(BaseModel):
    """JSON bodies: unknown fields rejected, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ResourcesIn(StrictModel):
    """Ranges depend on the type (LXC: cores 1-8, memory 256-16384, disk 5-200;
    VM: cores 1-16, memory 512-32768, disk 10-500); the bounds here are their union."""

    cores: int | None = Field(None, ge=1, le=16, description="CPU cores")
    memory: int | None = Field(None, ge=256, le=32768, description="Memory in MB")
    disk: int | None = Field(None, ge=5, le=500, description="Disk in GB")


class ResourcesOut(BaseModel):
    cores: int
    memory: int
    disk: int


class DeploymentCreate(StrictModel, AppSettings):
    name: Name = Field(description="DNS label: 3-63 of a-z, 0-9, '-'", examples=["my-app"])
    deployment_type: Literal["vm", "lxc"]
    framework: FrameworkKey = Field(description="A key of GET /api/frameworks, or auto to detect it from the "
                                    "repository's files", examples=["flask"])
    github_url: GithubUrl = Field(examples=["https://github.com/pallets/flask"])
    branch: Branch = "main"
    resources: ResourcesIn | None = None
    tags: Tags = Field(default_factory=list)
    env: EnvValues = Field(default_factory=dict)


class DeploymentUpdate(StrictModel, AppSettings):
    """Tags and resources; app settings (null resets one to the recipe's) take effect at the next release."""

    tags: Tags | None = None
    resources: ResourcesIn | None = None

    @model_validator(mode="after")
    def _something_to_change(self):
        if not self.model_fields_set:
            raise ValueError("give at least one of: tags, resources, build_command, start_command, port, "
                             "health_check_path")
        return self


class RedeployIn(StrictModel):
    branch: Branch | None = Field(None, description="Deploy this branch (and make it the deployment's)")
    commit: Commit | None = Field(None, description="Deploy this commit of the branch instead of its head")


class ReleaseOut(BaseModel):
    version: int
    status: Literal["queued", "building", "live", "superseded", "failed", "cancelled"]
    reason: Literal["create", "redeploy", "rollback", "env", "retry"]
    branch: str
    requested_commit: str | None
    commit_sha: str | None = Field(description="The commit actually deployed")
    rollback_of: int | None
    config: dict
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ReleaseEnvelope(BaseModel):
    success: Literal[True]
    release: ReleaseOut
    deployment: "DeploymentOut"


class ReleaseList(BaseModel):
    success: Literal[True]
    releases: list[ReleaseOut]


class EnvOut(BaseModel):
    success: Literal[True]
    env: dict[str, str] = Field(description="Keys with masked values")
    release: ReleaseOut | None = Field(None, description="The release the change started (running deployments)")


class LogLineOut(BaseModel):
    id: int
    release: int
    time: datetime
    stream: Literal["out", "step", "error", "app"]
    line: str


class BuildLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: int | None = Field(None, ge=1, le=MAX_VERSION, description="One release's lines (default: every release)")
    after: int | None = Field(None, ge=0, le=MAX_ID, description="Only lines with a larger id (next_after of a page)")
    limit: int = Field(500, ge=1, le=5000)


class BuildLogPage(BaseModel):
    success: Literal[True]
    lines: list[LogLineOut]
    next_after: int | None = Field(description="Pass as after= for the next page; null on the last one")


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    release: int | None = Field(None, ge=1, le=MAX_VERSION, description="Default: the newest release")
    after: int | None = Field(None, ge=0, le=MAX_ID, description="Like the Last-Event-ID header")


class RuntimeLogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: int = Field(200, ge=1, le=5000)


SortKey = Literal["created_at", "-created_at", "updated_at", "-updated_at", "name", "-name"]


class DeploymentListQuery(BaseModel):
    """Query strings arrive as text, so this model coerces; unknown parameters are still refused."""

    model_config = ConfigDict(extra="forbid")

    status: DeploymentStatus | None = None
    deployment_type: Literal["vm", "lxc"] | None = None
    framework: FrameworkKey | None = None
    name: str | None = Field(None, max_length=63, pattern=r"^[a-z0-9-]+$", description="Substring of the name")
    sort: SortKey = "-created_at"
    page: int | None = Field(None, ge=1, le=10_000_000)
    per_page: int | None = Field(None, ge=1, le=10_000)
    cursor: str | None = Field(None, max_length=512, description="next_cursor of the previous page")
    include_deleted: bool = False
    total: Literal["exact"] | None = Field(
        None, description="exact: also count every match (total, pages); it costs a scan of the matches")

    @model_validator(mode="after")
    def _page_or_cursor(self):
        if self.page is not None and self.cursor is not None:
            raise ValueError("give page or cursor, not both")
        return self


class LiveStatusOut(BaseModel):
    """The guest as Proxmox sees it now (status/current); `error` instead when Proxmox did not answer."""

    status: str | None = None
    cpu: float | None = Field(None, description="CPU load, 0..cpus")
    cpus: float | None = None
    memory_mb: int | None = None
    max_memory_mb: int | None = None
    disk_gb: float | None = None
    max_disk_gb: float | None = None
    uptime: int | None = Field(None, description="Seconds since the guest started")
    error: str | None = None


class DeploymentOut(BaseModel):
    id: str
    name: str
    deployment_type: Literal["vm", "lxc"]
    framework: str
    github_url: str
    branch: str
    resources: ResourcesOut
    tags: list[str]
    status: DeploymentStatus
    node: str | None
    vm_id: int | None
    ip_address: str | None
    error_message: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime
    deployed_at: datetime | None
    deleted_at: datetime | None
    version: int
    build_command: str | None
    start_command: str | None
    port: int | None = Field(description="Override of the framework's port")
    health_check_path: str | None
    env: dict[str, str] = Field(description="Environment variable keys, values masked")
    live_release: int | None = Field(description="The version of the release that serves")
    url: str | None = Field(description="Where the app answers, while it runs")
    webhook_enabled: bool = Field(description="GitHub push-to-deploy is on (POST .../webhook)")
    notification_url: str | None = Field(description="Where status changes are posted (PUT .../notifications)")
    live: LiveStatusOut | None = Field(None, description="Only in GET /api/deployments/<id>, when it has a guest")


class DeploymentEnvelope(BaseModel):
    success: Literal[True]
    deployment: DeploymentOut


class DeploymentPage(BaseModel):
    success: Literal[True]
    deployments: list[DeploymentOut]
    total: int | None = Field(description="how many match; only with ?total=exact, else null")
    pages: int | None = Field(description="total / per_page, rounded up; only with ?total=exact, else null")
    page: int | None = Field(description="null when paging by cursor")
    per_page: int
    next_cursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] = Field(default_factory=dict)
    request_id: str | None = None


class ErrorResponse(BaseModel):
    success: Literal[False]
    error: ErrorDetail


class StatsOut(BaseModel):
    success: Literal[True]
    total: int = Field(description="Deployments that are not deleted")
    by_status: dict[str, int]
    by_type: dict[str, int]
    success_rate: float | None = Field(
        description="(running + stopped) / (running + stopped + failed), null when none finished"
    )


class FrameworkOut(BaseModel):
    key: str
    display_name: str
    language: str
    default_port: int
    build_command: str | None
    start_command: str
    description: str


class FrameworkList(BaseModel):
    success: Literal[True]
    frameworks: list[FrameworkOut]


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    proxmox: Literal["ok", "unreachable", "not_configured"] = Field(
        description="Whether a cluster is configured and answers (checked at most every 15 s); "
                    "it does not change the status code, which is the API's own health")


class EventOut(BaseModel):
    id: int
    time: datetime
    kind: Literal["status", "step", "task", "error", "action"]
    from_status: str | None
    to_status: str | None
    message: str
    upid: str | None = Field(description="The Proxmox task this step started")


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int | None = Field(None, ge=0, le=MAX_ID,
                               description="Only events with a larger id (the next_after of a page)")
    limit: int = Field(200, ge=1, le=1000)


class EventList(BaseModel):
    success: Literal[True]
    events: list[EventOut]
    next_after: int | None = Field(description="Pass as after= for the next page; null on the last one")


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: bool = Field(True, description="Include the Proxmox task logs")


class NodeOut(BaseModel):
    node: str
    status: str
    cpu: float
    maxcpu: int
    free_memory_mb: int
    total_memory_mb: int
    free_disk_gb: int | None


class NodeList(BaseModel):
    success: Literal[True]
    nodes: list[NodeOut]
ReleaseEnvelope.model_rebuild()


# -- users, tokens, audit -------------------------------------------------------------------------------

Username = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{1,62}[a-z0-9]$", description="3-64 of a-z 0-9 _ . -")]
TokenName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.:@-]+$")]


class QuotasIn(StrictModel):
    """Per-user limits; null: the configured default."""

    deployments: int | None = Field(None, ge=0, le=10000)
    cores: int | None = Field(None, ge=0, le=100000)
    memory: int | None = Field(None, ge=0, le=100000000, description="MB")
    disk: int | None = Field(None, ge=0, le=10000000, description="GB")


class QuotaValues(BaseModel):
    deployments: int | None
    cores: int | None
    memory: int | None
    disk: int | None


class UserOut(BaseModel):
    id: str
    username: str
    role: Literal["admin", "member"]
    created_at: datetime
    disabled_at: datetime | None
    quota_overrides: QuotaValues
    allow_private_targets: bool


class TokenOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The token's first characters, to recognise it")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(StrictModel):
    name: TokenName
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="Omit for a token that does not expire")


class TokenCreated(BaseModel):
    success: Literal[True]
    token: str = Field(description="The token itself: shown this once, stored only as a hash")
    token_info: TokenOut


class TokenEnvelope(BaseModel):
    success: Literal[True]
    token_info: TokenOut


class TokenList(BaseModel):
    success: Literal[True]
    tokens: list[TokenOut]


class UserCreate(StrictModel):
    username: Username
    role: Literal["admin", "member"] = "member"
    quotas: QuotasIn | None = None
    allow_private_targets: bool = False


class UserUpdate(StrictModel):
    role: Literal["admin", "member"] | None = None
    quotas: QuotasIn | None = None
    allow_private_targets: bool | None = None
    disabled: bool | None = Field(None, description="true revokes every token of the user")


class UserEnvelope(BaseModel):
    success: Literal[True]
    user: UserOut


class UserCreated(UserEnvelope):
    token: str = Field(description="The user's first API token: shown this once")
    token_info: TokenOut


class UserList(BaseModel):
    success: Literal[True]
    users: list[UserOut]


class MeOut(BaseModel):
    success: Literal[True]
    user: UserOut
    quotas: QuotaValues | None = Field(description="The limits that apply; null for admins (no quota)")
    usage: QuotaValues


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(None, max_length=64, description="A user id or username")
    deployment: str | None = Field(None, max_length=64, description="A deployment id")
    action: str | None = Field(None, max_length=64, pattern=r"^[a-z_.]+$",
                               description="An action or its prefix (deployment., token.)")
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = Field(None, ge=1, le=MAX_ID, description="The next_before of the previous page")
    limit: int = Field(100, ge=1, le=1000)


class AuditOut(BaseModel):
    id: int
    time: datetime
    user_id: str | None
    username: str | None
    action: str
    deployment_id: str | None
    target: str | None
    ip_address: str | None
    request_id: str | None
    details: dict


class AuditPage(BaseModel):
    success: Literal[True]
    entries: list[AuditOut]
    next_before: int | None


# -- webhooks and notifications ------------------------------------------------------------------------


class WebhookOut(BaseModel):
    success: Literal[True]
    enabled: bool
    url: str = Field(description="The payload URL to give GitHub (content type application/json)")
    secret: str | None = Field(None, description="Only when just enabled: shown this once")
    events: list[str]


class NotificationTargetIn(StrictModel):
    url: str = Field(max_length=2048, description="https URL; loopback and private addresses only if an admin "
                     "allowed them for the owner")


class NotificationTargetOut(BaseModel):
    success: Literal[True]
    url: str | None
    secret: str | None = Field(None, description="Only when just set: the HMAC key; shown this once")
    signature_header: str


class DeliveryOut(BaseModel):
    id: int
    event: str
    url: str
    payload: dict
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(50, ge=1, le=500)


class DeliveryPage(BaseModel):
    success: Literal[True]
    deliveries: list[DeliveryOut]
    next_before: int | None


class WebhookReceipt(BaseModel):
    success: Literal[True]
    status: str = Field(description="pong, duplicate, ignored or deploying")
    message: str
    release: int | None = None
