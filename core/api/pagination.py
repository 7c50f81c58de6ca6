"""Pagination: every list is paged; a page size that is not a whole number is a 400, not the default."""

from rest_framework import exceptions

from core.pagination import StandardPagination


class ClinicPagination(StandardPagination):
    page_size_query_description = f"Results per page, 1 to {StandardPagination.max_page_size} (larger is capped)."

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise exceptions.ValidationError({self.page_size_query_param: ["A whole number, 1 or more."]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters
