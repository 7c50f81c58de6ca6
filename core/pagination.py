"""The API's default page (settings.REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]).

Its own module, outside core.api: DRF imports it while building its generic views, before
core.api (which imports those views) can load.
"""

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
