"""The tools both .venv-mcp2 test servers serve (server.py on the SDK's MCPServer,
fastmcp_server.py on FastMCP), so that one test reads either server alike: each answers
with what it was given, a card number in what read_file reads."""


def read_file(path: str) -> str:
    return f"contents of {path}: card 4111 1111 1111 1111"


def run_shell(command: str) -> str:
    return f"ran {command}"


TOOLS = ((read_file, "Reads a file."), (run_shell, "Runs a shell command."))
