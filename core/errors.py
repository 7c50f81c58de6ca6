"""Domain errors every app may raise and every edge (API, pages) knows how to answer."""


class ConflictError(Exception):
    """A change lost to the current state of the record (a booking race): the API answers 409.

    Subclasses name their `code`, which the API puts in the answer beside the message.
    """

    code = "conflict"
