"""/api/deployments/<ident>/metrics: the guest's CPU, memory, network and disk figures over time."""
from spectree import Response

from backend.api import api_bp
from backend.api.deployments import find
from backend.api.spec import spec
from backend.platform import platform_of
from backend.schemas.common import ErrorResponse, dump
from backend.schemas.metrics import GuestMetrics, GuestMetricsEnvelope, MetricsQuery
from backend.services.metrics import guest_metrics

TAGS = ["deployments"]


@api_bp.get("/deployments/<ident>/metrics")
@spec.validate(resp=Response(HTTP_200=GuestMetricsEnvelope, HTTP_404=ErrorResponse, HTTP_409=ErrorResponse,
                             HTTP_503=ErrorResponse), tags=TAGS)
def deployment_metrics(ident, query: MetricsQuery):
    """The guest's figures over an hour, a day or a week, as Proxmox keeps them (its rrddata, averages).

    409 no_guest before the deployment has a guest; 503 proxmox_unavailable when Proxmox does not answer.
    """
    series = guest_metrics(find(ident), platform_of().proxmox, query.timeframe)
    return {"success": True, **dump(GuestMetrics, series)}
