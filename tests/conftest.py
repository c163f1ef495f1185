"""Shared set-up for the QGIS-side tests: a headless, sandboxed QGIS, the real rasters and tiny real models.

pytest-qgis starts one real QgsApplication per session in ``pytest_configure``; this module is an initial
conftest, imported before that, so the environment below is in place when QGIS starts:

* ``QT_QPA_PLATFORM=offscreen``: no display here or in CI (Qt otherwise aborts with exit 134);
* ``QGIS_CUSTOM_CONFIG_PATH``: a throw-away profile (pytest-qgis then points it at its own temp dir);
* ``GDAL_PAM_ENABLED=NO``: QGIS would otherwise write ``.aux.xml`` statistics next to the shared, read-only
  rasters.
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "QGIS_CUSTOM_CONFIG_PATH" not in os.environ:  # a sandboxed QGIS profile, removed when the test run ends
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = tempfile.mkdtemp(prefix="planet-terrain-qgis-")
    atexit.register(shutil.rmtree, os.environ["QGIS_CUSTOM_CONFIG_PATH"], ignore_errors=True)
os.environ["GDAL_PAM_ENABLED"] = "NO"
os.environ.pop("PLANET_TERRAIN_MODEL", None)  # tests choose their model explicitly

import pytest  # noqa: E402

from paths import RASTERS as _SHARED_RASTERS  # noqa: E402
from paths import REPO  # noqa: E402

#: The shared rasters (PLANET_TERRAIN_RASTERS overrides, e.g. for a copy elsewhere).
RASTERS = Path(os.environ.get("PLANET_TERRAIN_RASTERS") or _SHARED_RASTERS)

APOLLO = "AS15-M-0295_SML_geo.tif"
APOLLO_2 = "AS15-M-0296_SML_geo.tif"
LOLA = "Lunar_LRO_LOLA_Shade_MAP2_90.0N20.0_LAMB.tif"
WAC = "lrowacphomap__WAC_GLD100_V1.0_GLOBAL_with_LOLA_30M_POLE.16bit.reduced.cub"
VESTA_DAWN = "isis2pds__dawnEqui1.cub"
VESTA_DTM = "demprep__vest64_dtm_specialpixels_downsampled.cub"
MARS_EQUI = "hidtmgen__ortho__PSP_002118_1510_25cm_o_forPDS_cropped.cub"
MARS_POLAR = "hidtmgen__ortho__PSP_009404_2635_RED_NLstretch_25cm_o_forPDS_cropped.cub"


def raster_path(name: str) -> Path:
    path = RASTERS / name
    if not path.is_file():
        pytest.fail(f"shared raster {path} is missing (set PLANET_TERRAIN_RASTERS to their folder)")
    return path


@pytest.fixture
def raster_layer(qgis_app) -> Callable[[str], "QgsRasterLayer"]:  # noqa: F821
    """Open a shared raster as a real QgsRasterLayer (not added to the project)."""
    from qgis.core import QgsRasterLayer

    def load(name: str) -> QgsRasterLayer:
        layer = QgsRasterLayer(str(raster_path(name)), Path(name).stem)
        assert layer.isValid(), f"QGIS could not open {name}"
        return layer

    return load


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real, valid tiny ONNX model (tests/model_factory.py): 32 px input, the 7 HiRISE classes."""
    from model_factory import write_valid_model

    return write_valid_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def broken_model(tmp_path_factory) -> Path:
    """A real ONNX file whose contract lacks the temperature key."""
    from model_factory import broken_metadata, write_model

    return write_model(tmp_path_factory.mktemp("broken") / "no_temperature.onnx", broken_metadata("missing_key"))


@pytest.fixture
def terrain_processing(qgis_processing):
    """Processing initialised with the Planet Terrain provider registered, as the plugin's initProcessing does.

    Registered per test and removed afterwards, so plugin load/unload tests see a clean registry.
    """
    from qgis.core import QgsApplication

    from planet_terrain_plugin.processing.provider import PROVIDER_ID, PlanetTerrainProvider

    registry = QgsApplication.processingRegistry()
    added = None
    if registry.providerById(PROVIDER_ID) is None:
        added = PlanetTerrainProvider()
        assert registry.addProvider(added)
    yield registry.providerById(PROVIDER_ID)
    if added is not None:
        registry.removeProvider(added)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Process Qt events until ``predicate()`` holds or the time is up (bounded: tests never hang)."""
    from qgis.core import QgsApplication

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        QgsApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    QgsApplication.processEvents()
    return predicate()



@pytest.fixture
def bar(qgis_iface):
    """pytest-qgis's message bar, emptied before each test, to read what the plugin told the user."""
    b = qgis_iface.messageBar()
    for level in b.messages:
        b.messages[level] = []
    return b

@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread():
    """Python's cycle collector runs in whichever thread happens to allocate: during a Processing task or the
    grid's reader/model threads it could collect a Qt object (a layer, a task) of an earlier test there and run
    its C++ destructor outside the thread that owns it -- a segfault in a later, unrelated test (seen once in a
    task thread, once in a fixture). Automatic collection is off for the session; it runs here, after each
    test, on the main thread, where Qt objects may be deleted."""
    gc.disable()
    yield
    gc.collect()


@pytest.fixture(scope="module", autouse=True)
def _release_frames_leaked_by_processing_errors():
    """Free what QGIS 3.22 leaks when an algorithm raises QgsProcessingException through processing.run.

    The traceback of the exception raised inside ``processAlgorithm`` stays referenced from C++ (sip keeps the
    fetched error), and its frames' ``f_back`` chain keeps every calling frame alive -- processing's context
    with its layers, this module's tests and their layers. Destroyed only at interpreter exit, after
    pytest-qgis has exited QGIS, such a layer segfaults GDAL (exit code 139 after every test passed). Clearing
    those finished frames while QGIS still runs releases the layers in time. Only frames of this project and
    of QGIS's processing package are cleared, never a suspended generator (pytest's fixtures).
    Autouse per test module, so every module that drives Processing is covered."""
    yield
    roots = ("planet_terrain_plugin", "/tests/", "/processing/")
    for obj in gc.get_objects():
        if type(obj) is not types.TracebackType:  # type(), not isinstance: no attribute lookups on odd objects
            continue
        tb = obj
        while tb is not None:
            frame = tb.tb_frame
            while frame is not None:
                code = frame.f_code
                if any(r in code.co_filename for r in roots) and not code.co_flags & inspect.CO_GENERATOR:
                    try:
                        frame.clear()
                    except RuntimeError:  # still executing (the fixture machinery above us)
                        pass
                frame = frame.f_back
            tb = tb.tb_next
    gc.collect()


def run_in_fresh_qgis(body: str, profile: Path, before: str = "", timeout: int = 180) -> subprocess.CompletedProcess:
    """Run ``body`` in a new interpreter with its own QgsApplication, Processing and this plugin's provider
    (profile sandboxed in ``profile``), for what must not touch the test process (resource limits, modules made
    unimportable). ``before`` runs first; ``body`` sees ``app``, ``plugin``, ``processing``, ``QgsApplication``
    and ``QgsProcessingException``; ``app.exitQgis()`` runs after it."""
    start = textwrap.dedent(f"""
        import os, sys
        os.environ.update(QT_QPA_PLATFORM='offscreen', GDAL_PAM_ENABLED='NO',
                          QGIS_CUSTOM_CONFIG_PATH={str(profile)!r})
        sys.path[:0] = [{str(REPO)!r}, '/usr/share/qgis/python/plugins']
        from qgis.core import QgsApplication, QgsProcessingException
        app = QgsApplication([], False)
        app.initQgis()
        from processing.core.Processing import Processing
        Processing.initialize()
        from planet_terrain_plugin import classFactory
        plugin = classFactory(None)
        plugin.initProcessing()
        import processing
    """)
    code = textwrap.dedent(before) + start + textwrap.dedent(body) + "app.exitQgis()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=""))


@contextlib.contextmanager
def as_unprivileged_user():
    """Act as user "nobody" inside the block when the tests run as root (root writes anywhere, a user does not),
    so a read-only folder really refuses the write; a no-op for ordinary users."""
    as_root = os.geteuid() == 0
    if as_root:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        yield
    finally:
        if as_root:
            os.seteuid(0)
            os.setegid(0)


def pytest_sessionfinish(session, exitstatus) -> None:
    session.config._planet_terrain_status = int(exitstatus)


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config) -> None:
    """End the process with pytest's own status once every result is reported.

    QGIS 3.22 can crash while it and Python tear down after the last test (a double free or a segfault in objects
    both sides still hold: exit 134/139 with every test passed, on main before this hook too, depending on which
    tests ran). The results are final by then, so the teardown is skipped rather than let a crash after the run
    turn a green run red or, worse, a red run into a signal."""
    status = getattr(config, "_planet_terrain_status", None)
    if status is None or os.environ.get("PLANET_TERRAIN_FULL_TEARDOWN"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)

