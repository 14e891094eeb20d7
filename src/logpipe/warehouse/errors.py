"""Store errors and the one function that decides whether one is worth retrying. Imports nothing of
logpipe, so every layer may raise and catch these."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

# Server error codes that retrying cannot fix: the data or the statement is wrong.
PERMANENT_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    8,    # THERE_IS_NO_COLUMN
    10,   # NOT_FOUND_COLUMN_IN_BLOCK
    16,   # NO_SUCH_COLUMN_IN_TABLE
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    35,   # TOO_FEW_ARGUMENTS_FOR_FUNCTION
    36,   # BAD_ARGUMENTS
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    42,   # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    43,   # ILLEGAL_TYPE_OF_ARGUMENT
    44,   # ILLEGAL_COLUMN
    46,   # UNKNOWN_FUNCTION
    47,   # UNKNOWN_IDENTIFIER
    50,   # UNKNOWN_TYPE
    53,   # TYPE_MISMATCH
    60,   # UNKNOWN_TABLE
    62,   # SYNTAX_ERROR
    63,   # UNKNOWN_AGGREGATE_FUNCTION
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    81,   # UNKNOWN_DATABASE
    117,  # INCORRECT_DATA
    164,  # READONLY
    179,  # MULTIPLE_EXPRESSIONS_FOR_ALIAS
    184,  # ILLEGAL_AGGREGATION
    215,  # NOT_AN_AGGREGATE
    352,  # AMBIGUOUS_COLUMN_NAME
    386,  # NO_COMMON_TYPE
    456,  # UNKNOWN_QUERY_PARAMETER
    457,  # BAD_QUERY_PARAMETER
    469,  # VIOLATED_CONSTRAINT
    497,  # ACCESS_DENIED
})
# A query past one of its limits: a user's query is at fault (an answer of 400), while an insert may
# well succeed when retried (memory is free again), so these stay retryable.
LIMIT_ERROR_CODES = frozenset({
    158,  # TOO_MANY_ROWS
    159,  # TIMEOUT_EXCEEDED
    241,  # MEMORY_LIMIT_EXCEEDED
    307,  # TOO_MANY_BYTES
    396,  # TOO_MANY_ROWS_OR_BYTES
})


class StoreError(Exception):
    def __init__(self, message: str, code: int | None, retryable: bool):
        super().__init__(message)
        self.code = code
        self.retryable = retryable

    @property
    def limit_exceeded(self) -> bool:
        return self.code in LIMIT_ERROR_CODES


class StoreBusy(StoreError):
    """Every slot for user queries is taken; retry later."""

    def __init__(self, message: str):
        super().__init__(message, None, True)


def classify(exc: BaseException) -> StoreError:
    """The one place that decides whether a store error is worth retrying."""
    if isinstance(exc, StoreError):
        return exc
    code = getattr(exc, "code", None)
    if isinstance(exc, OperationalError):
        return StoreError(f"ClickHouse unreachable: {exc}", code, True)
    if isinstance(exc, ClickHouseError | DatabaseError) and code is not None:
        code = int(code)
        return StoreError(str(exc), code, code not in PERMANENT_ERROR_CODES)
    if isinstance(exc, OSError | TimeoutError):
        return StoreError(f"ClickHouse transport error: {exc}", None, True)
    return StoreError(f"{type(exc).__name__}: {exc}", code, False)
