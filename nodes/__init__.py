"""ComfyUI node classes of the pack (V3 schema: ComfyUI loads them through `comfy_entrypoint`)."""
from comfy_api.latest import ComfyExtension, io

from .calibrate import AdaCacheCalibrate
from .compare import AdaCacheCompare
from .demo import DemoLatentPreview, DemoPrompt
from .moreg import MoRegSettingsNode
from .patch_model import AdaCachePatchModel
from .plan_search import AdaCachePlanSearch
from .raylight import AdaCachePatchModelRaylight
from .viewer import CacheScheduleViewer

NODES: list[type[io.ComfyNode]] = [AdaCachePatchModel, AdaCachePatchModelRaylight, MoRegSettingsNode, AdaCacheCalibrate,
                                  AdaCachePlanSearch, CacheScheduleViewer, AdaCacheCompare, DemoPrompt, DemoLatentPreview]


class AdaCacheExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


def comfy_entrypoint() -> AdaCacheExtension:
    return AdaCacheExtension()
