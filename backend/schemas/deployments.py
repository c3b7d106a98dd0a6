"""/api/deployments: create, change, list and the deployment itself."""
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, model_validator

from backend.rules import check_cron
from backend.schemas.common import (
    Branch,
    Command,
    FrameworkKey,
    GithubUrl,
    HealthPath,
    Name,
    StrictModel,
    Tags,
    UuidText,
)
from backend.status import DeploymentStatus

AppPort = Annotated[int, Field(ge=1024, le=65535, description="The port the app listens on (1024-65535)")]
EnvValues = Annotated[dict[str, str], Field(description="Environment variables; values never come back")]


class AppSettings(BaseModel):
    """How the app is built and run; each replaces its part of the framework's recipe."""

    build_command: Command | None = Field(None, description="Replaces the recipe's build step (after its install); "
                                          "a shell command line, run as the app's user in the source directory")
    start_command: Command | None = Field(None, description="The web process (replaces the recipe's and a Procfile's "
                                          "web line); a shell command line, $PORT and $HOST set")
    release_command: Command | None = Field(None, description="The release phase: run after the build and before the "
                                            "switch, with the new release's environment (migrations, init-db); if it "
                                            "fails, the release fails and the live one keeps serving. Replaces a "
                                            "Procfile's release line")
    port: AppPort | None = None
    health_check_path: HealthPath | None = Field(None, description="GET here must answer 2xx/3xx (default /)")


def _cron(value):
    if value is None:
        return value
    return check_cron(value.strip())


KeepCount = Annotated[int | None, Field(None, ge=0, le=1000)]


class BackupSettings(BaseModel):
    """Snapshots and backups of the guest (null: the platform's default)."""

    snapshot_before_release: bool | None = Field(None, description="Take a Proxmox snapshot of the guest before "
                                                 "each release (default: SNAPSHOT_BEFORE_RELEASE)")
    backup_schedule: Annotated[str | None, AfterValidator(_cron)] = Field(
        None, max_length=100, description="A cron expression (five fields, UTC) for scheduled backups, at most "
        "hourly, e.g. '0 3 * * *'; null: none", examples=["0 3 * * *"])
    backup_keep_last: KeepCount = Field(None, description="Retention: the newest N backups (BACKUP_KEEP_LAST)")
    backup_keep_daily: KeepCount = Field(None, description="Retention: the newest backup of each of the last N days")
    backup_keep_weekly: KeepCount = Field(None, description="Retention: the newest backup of each of the last N weeks")


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


class DeploymentCreate(StrictModel, AppSettings, BackupSettings):
    name: Name = Field(description="DNS label: 3-63 of a-z, 0-9, '-'", examples=["my-app"])
    deployment_type: Literal["vm", "lxc"]
    framework: FrameworkKey = Field(description="A key of GET /api/frameworks, or auto to detect it from the "
                                    "repository's files", examples=["flask"])
    github_url: GithubUrl = Field(examples=["https://github.com/pallets/flask"])
    branch: Branch = "main"
    resources: ResourcesIn | None = None
    tags: Tags = Field(default_factory=list)
    env: EnvValues = Field(default_factory=dict)


class DeploymentUpdate(StrictModel, AppSettings, BackupSettings):
    """Tags and resources; app settings (null resets one to the recipe's) take effect at the next release."""

    tags: Tags | None = None
    resources: ResourcesIn | None = None

    @model_validator(mode="after")
    def _something_to_change(self):
        if not self.model_fields_set:
            raise ValueError("give at least one of: tags, resources, build_command, start_command, "
                             "release_command, port, health_check_path, snapshot_before_release, backup_schedule, "
                             "backup_keep_last, backup_keep_daily, backup_keep_weekly")
        return self


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


class DeploymentRecord(BaseModel):
    """A deployment as Deployment.to_dict() gives it, read from the row. A field read from an attribute of
    another name takes either name (AliasChoices): the row's when dumped from it, the JSON's when spectree
    checks a view's answer."""

    model_config = ConfigDict(from_attributes=True)

    id: UuidText
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
    user_id: UuidText | None
    created_at: datetime
    updated_at: datetime
    deployed_at: datetime | None
    deleted_at: datetime | None
    version: int
    build_command: str | None
    start_command: str | None
    release_command: str | None
    port: int | None = Field(description="Override of the framework's port")
    health_check_path: str | None
    env: dict[str, str] = Field(validation_alias=AliasChoices("env", "masked_env"),
                                description="Environment variable keys, values masked")
    live_release: int | None = Field(description="The version of the release that serves")
    url: str | None = Field(description="Where the app answers, while it runs")
    webhook_enabled: bool = Field(description="GitHub push-to-deploy is on (POST .../webhook)")
    notification_url: str | None = Field(validation_alias=AliasChoices("notification_url", "notify_url"),
                                         description="Where status changes are posted (PUT .../notifications)")
    snapshot_before_release: bool | None = Field(description="null: the platform's default")
    backup_schedule: str | None
    backup_keep_last: int | None
    backup_keep_daily: int | None
    backup_keep_weekly: int | None


# The API's deployment: the record and, from GET /api/deployments/<id>, the guest's live status (which no row
# has, so it is not read from one). No docstring: it would enter the OpenAPI document.
class DeploymentOut(DeploymentRecord):
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
