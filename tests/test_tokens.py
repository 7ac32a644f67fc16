"""Offline token counting, and plain tiktoken working offline."""

from __future__ import annotations

import os
import subprocess
import sys

from course_utils import tokens


def test_count_text_matches_cl100k():
    assert tokens.count_text("") == 0
    assert tokens.count_text("Hello, world!") == 4
    assert tokens.count_text("<|endoftext|>") > 1  # special-token text is ordinary text here


def test_count_request_adds_the_documented_overheads():
    user = {"role": "user", "content": "What is my name?"}
    bare = tokens.count_request({"messages": [user]})
    assert bare == tokens.REQUEST_OVERHEAD + tokens.MESSAGE_OVERHEAD + tokens.count_text("What is my name?")
    with_system = tokens.count_request({"system": "Be brief.", "messages": [user]})
    assert with_system - bare == tokens.SYSTEM_OVERHEAD + tokens.count_text("Be brief.")
    tool = {"name": "lookup", "description": "Find an order", "input_schema": {"type": "object", "properties": {}}}
    with_tools = tokens.count_request({"tools": [tool], "messages": [user]})
    assert with_tools - bare == tokens.TOOLS_OVERHEAD + tokens.count_tool(tool)
    blocks = {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]}
    assert tokens.count_request({"messages": [blocks]}) == bare  # a string and a text block count the same


def test_tool_blocks_and_images_are_counted():
    turn = [
        {"type": "tool_use", "id": "t", "name": "lookup", "input": {"order": 4417}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "xx"}},
    ]
    assert tokens.count_blocks(turn) > tokens.IMAGE_TOKENS


def test_plain_tiktoken_get_encoding_works_offline(tmp_path):
    # A fresh cache dir, and any attempt to download raises: seeding must make the download unnecessary.
    code = (
        "import tiktoken.load as L\n"
        "def no_net(*a, **k): raise RuntimeError('tried to download')\n"
        "L.read_file = no_net\n"
        "import course_utils.tokens\n"
        "import tiktoken\n"
        "print(len(tiktoken.get_encoding('cl100k_base').encode('Hello, world!')))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4"
