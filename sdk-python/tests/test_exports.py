"""The public names do not drift: changing them is a deliberate edit of this list."""

import subprocess
import sys
from pathlib import Path

import ferrogate_sdk
import ferrogate_sdk.inprocess
import ferrogate_sdk.testing

PUBLIC = {
    "ferrogate_sdk": [
        "Args", "ConfError", "Headers", "Plugin", "PreparedConf", "Registry", "Request",
        "RequestHeaders", "Response", "ResponseHeaders", "ResponseReply", "Rewrite", "Stop",
        "UpstreamResponse", "__version__", "default_registry", "load_plugins", "register",
        "serve",
    ],
    "ferrogate_sdk.inprocess": [
        "VAR", "REQ_BODY", "RESP_BODY", "ConfError", "PreparedConf", "load", "prepare",
        "request_call", "response_call",
    ],
    "ferrogate_sdk.testing": ["call_request", "call_response", "chain"],
}  # fmt: skip

MODULES = {
    "ferrogate_sdk": ferrogate_sdk,
    "ferrogate_sdk.inprocess": ferrogate_sdk.inprocess,
    "ferrogate_sdk.testing": ferrogate_sdk.testing,
}


def test_all_is_the_public_list():
    for name, module in MODULES.items():
        assert sorted(module.__all__) == sorted(PUBLIC[name]), name


def test_every_exported_name_exists_and_public_objects_live_in_private_modules():
    for name, module in MODULES.items():
        for attr in module.__all__:
            assert hasattr(module, attr), f"{name}.{attr}"
    for attr in ferrogate_sdk.__all__:
        obj = getattr(ferrogate_sdk, attr)
        mod = getattr(obj, "__module__", None)
        if mod is not None and isinstance(obj, type):
            assert mod.startswith("ferrogate_sdk._"), f"{attr} is defined in {mod}"


def test_no_other_public_names_in_the_package_namespace():
    public = {n for n in vars(ferrogate_sdk) if not n.startswith("_")}
    submodules = {"inprocess", "testing", "runner"}
    assert public - submodules <= set(ferrogate_sdk.__all__)


def test_runtime_needs_only_the_standard_library():
    code = (
        "import sys, ferrogate_sdk, ferrogate_sdk.runner, ferrogate_sdk.inprocess, "
        "ferrogate_sdk.testing\n"
        "bad = [m for m in sys.modules if m.startswith(('flatbuffers', 'ferrogate_sdk._a6'))]\n"
        "assert not bad, bad\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src})
