# shim until the import sweep: import from core.records
from core.records import ClinicalRecord, ClinicalRecordQuerySet, HardDeleteForbidden

__all__ = ["ClinicalRecord", "ClinicalRecordQuerySet", "HardDeleteForbidden"]
