"""Repository hygiene: lint, Dockerfile, notebooks (executed), README commands in CI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NOTEBOOK_NEEDS = {"policy_results.ipynb": "mpe2"}  # notebooks that run a real environment: its package


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: install the dev extra (pip install -e '.[dev]')")
    return path


def test_ruff_lint_passes():
    result = subprocess.run([_tool("ruff"), "check", "logo", "tests", "benchmarks", "notebooks"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_runs_upward_across_the_layers():
    """import-linter's layer contract in pyproject.toml: commands > callbacks > synthetic, online > world_model,
    policy > data > envs > nn > base modules; a module never imports a layer above its own (lazy imports count)."""
    result = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_no_import_circle_between_logo_modules():
    """No two modules import each other, directly or through others (grimp's graph, lazy imports included)."""
    import grimp

    graph = grimp.build_graph("logo", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    circles = [sorted(c) for c in _strongly_connected(imports) if len(c) > 1]
    assert not circles, circles


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of a directed graph {node: successors} (iterative)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_from_pyproject_only():
    """One source of truth for versions: the image installs the package's own extras, nothing pinned apart."""
    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "pip install" in line]
    assert installs and all(re.search(r'pip install --no-cache-dir (--no-deps )?"?\.(\[all\])?"?', i) for i in installs)
    assert "ENTRYPOINT [\"logo\"]" in (ROOT / "Dockerfile").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) >= 2, "README must show the main-job command and the test command"
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci/run").read_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.name for n in NOTEBOOKS])
def test_notebook_runs_and_is_stored_without_outputs(notebook):
    if notebook.name in NOTEBOOK_NEEDS:
        pytest.importorskip(NOTEBOOK_NEEDS[notebook.name], reason=f"{notebook.name} needs the environment's extra")
    nb = nbformat.read(notebook, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb.cells if c.cell_type == "code"), f"{notebook.name}: clear outputs before committing"
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{notebook.name}: no figure was drawn"


def test_there_are_notebooks():
    names = {n.name for n in NOTEBOOKS}
    assert {"dataset_exploration.ipynb", "world_model_diagnostics.ipynb", "policy_results.ipynb"} <= names
    assert set(NOTEBOOK_NEEDS) <= names


def test_data_loading_benchmark_runs_on_a_tiny_dataset():
    """The benchmark script itself (not a timing): it must keep working as the code changes."""
    result = subprocess.run([sys.executable, "benchmarks/data_loading.py", "--transitions", "500",
                             "--disk_batches", "1", "--memory_batches", "3"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "| memory / zarr ratio |" in result.stdout and "transitions=500" in result.stdout


def test_readme_main_job_is_the_quickstart_pipeline():
    readme = (ROOT / "README.md").read_text()
    main_job = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)[0]
    assert "logo pipeline --config configs/quickstart.yaml" in main_job
    assert (ROOT / "configs/quickstart.yaml").is_file()
