"""Parsing and validating a Messages API request body into a :class:`MessagesRequest`.

Validation follows the API: precise ``invalid_request_error`` messages that name the field
(``messages.1.content.0.text: Field required``), consecutive turns of the same role merged, and a
``tool_result`` accepted only when the previous assistant turn holds its ``tool_use``.

Unknown fields are refused, at the top level and inside messages, blocks, tools, ``tool_choice``,
``thinking``, ``cache_control``, ``metadata`` and ``output_config``, with the API's wording
``<path>: Extra inputs are not permitted`` (so ``max_tokens`` on count_tokens is a 400 too). The known
fields are those of the installed SDK's request types (anthropic 2.14: ``MessageCreateParams``,
``MessageCountTokensParams``, the block, tool and config params), plus ``stream`` and the sampling
parameters the 4.x models still accept. Per-model rules (which *known* settings a model refuses)
live in :mod:`.rules`.

Contract: :func:`parse_json_body` and :func:`parse_messages_request` raise only
:class:`~.errors.InvalidRequest` for bad input, never another exception, whatever the body holds.
"""

from .json_body import parse_json_body
from .parse import parse_messages_request
from .schema import KNOWN_BETAS
from .types import Message, MessagesRequest, text_of

__all__ = [
    "KNOWN_BETAS",
    "Message",
    "MessagesRequest",
    "parse_json_body",
    "parse_messages_request",
    "text_of",
]
