# shim until the import sweep: import from core.pagination (settings.REST_FRAMEWORK names this path)
from core.pagination import StandardPagination

__all__ = ["StandardPagination"]
