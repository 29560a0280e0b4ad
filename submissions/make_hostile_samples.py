"""Write the hostile sample submissions as notebooks: `python submissions/make_hostile_samples.py`.

Each folder under ``hostile/`` is one student handing in a CNNMNIST.ipynb (dl2025-a2, task
1.3) that attacks the grader in one way: runs forever, exhausts a resource, tries to reach
the network or files outside its workspace, kills its parent, fakes what the probes see, or
claims a score. Every payload bounds itself (loops and sizes capped, network targets on the
loopback apart from one short connect attempt outside), so it stops on its own even where
nothing confines it. Payloads that probe the host write what happened, action by action, to
``hostile-report.json`` in their working directory; ``targets.json``, when a grader puts one
next to the notebook, names host paths worth trying besides the ones the payload guesses.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from make_dl2025_a2_samples import CNN_NET, DATA, IMPORTS, MAKE_MODEL, TRAIN, notebook

HERE = Path(__file__).parent / "hostile"

RECORDER = """\
import json, os, time
from pathlib import Path

REPORT = {}


def attempt(name, action):
    \"\"\"Try one hostile action and record what happened (done: ..., or blocked: the error).\"\"\"
    try:
        REPORT[name] = 'done: ' + str(action())[:200]
    except BaseException as error:
        REPORT[name] = f'blocked: {type(error).__name__}: {error}'[:300]
    Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))


def host_paths():
    \"\"\"Host paths worth trying: those in targets.json, and guesses from the workspace's own path.\"\"\"
    given = json.loads(Path('targets.json').read_text()) if Path('targets.json').exists() else {}
    guessed = {}
    for ancestor in list(Path.cwd().parents)[:4]:
        for relative in ('results.sqlite', 'staging', 'students', 'data/hidden/mnist/labels.npy',
                         '../data/hidden/mnist/labels.npy'):
            guessed[f'guess {relative} above {ancestor.name}'] = str(ancestor / relative)
    guessed['ssh keys'] = str(Path('/root/.ssh'))
    guessed['shadow'] = '/etc/shadow'
    return {**guessed, **given}"""

INFINITE_LOOP = """\
# An infinite loop (bounded at 120 s so that it ends even where nothing stops it).
start = time.time()
spins = 0
while time.time() < start + 120:
    spins += 1"""

SLEEP_FOREVER = """\
# time.sleep(10**6), bounded at 120 s.
time.sleep(120)"""

ENDLESS_TRAINING = """\
# A training loop that would take hours, capped at 120 s of wall-clock time.
start = time.time()
epoch = 0
while time.time() < start + 120 and epoch < 10_000:
    for images, labels in train_loader:
        optimizer.zero_grad()
        loss_function(model(images), labels).backward()
        optimizer.step()
    epoch += 1"""

MEMORY_HOG = """\
# Allocate 64 GiB in 256 MiB steps (touching every page); stops at 3 GiB where nothing limits it.
STEP = 256 * 2**20
CAP = 3 * 2**30
chunks = []
while len(chunks) * STEP < min(64 * 2**30, CAP):
    chunks.append(bytearray(b'x') * STEP)
del chunks"""

FORK_BOMB = """\
# A fork bomb, bounded: at most 3,000 children, each sleeping 10 s and exiting.
children = 0
try:
    for _ in range(3_000):
        pid = os.fork()
        if pid == 0:
            time.sleep(10)
            os._exit(0)
        children += 1
except OSError as error:
    attempt('fork', lambda: (_ for _ in ()).throw(error))
REPORT['children'] = children
Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))"""

THREAD_STORM = """\
# 10,000 threads, each waiting (at most 30 s) on an event set at the end.
import threading

stop = threading.Event()
started = 0
try:
    for _ in range(10_000):
        threading.Thread(target=stop.wait, args=(30,), daemon=True).start()
        started += 1
except RuntimeError as error:
    attempt('threads', lambda: (_ for _ in ()).throw(error))
stop.set()
REPORT['started'] = started
Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))"""

HUGE_FILE = """\
# Write a 50 GiB file in 8 MiB blocks; stops at 2 GiB (or at the first error) where nothing limits it.
CHUNK = b'\\0' * (8 * 2**20)
CAP = min(50 * 2**30, 2 * 2**30)
written = 0
try:
    with open('huge.bin', 'wb') as stream:
        while written < CAP:
            stream.write(CHUNK)
            written += len(CHUNK)
except OSError as error:
    REPORT['write'] = f'blocked: {type(error).__name__}: {error}'
REPORT['written'] = written
Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))"""

FLOOD_STDOUT = """\
# Print 1 GB to stdout in 1 MiB blocks; stops after 256 MiB or 10 s where nothing cuts it.
import sys

BLOCK = ('x' * 1023 + '\\n') * 1024
start = time.time()
printed = 0
while printed < min(2**30, 2**28) and time.time() < start + 10:
    sys.stdout.write(BLOCK)
    os.write(1, BLOCK.encode())  # the kernel's real stdout too, not only what Jupyter captures
    printed += 2 * len(BLOCK)"""

FILL_TMP = """\
# Fill /tmp with 16 MiB files; stops at 2 GiB or at the first error, and removes what it wrote.
import shutil, tempfile

folder = Path(tempfile.gettempdir()) / 'hostile-fill-tmp'
written = 0
try:
    folder.mkdir(exist_ok=True)
    while written < 2 * 2**30:
        (folder / f'{written // 2**24}.bin').write_bytes(b'\\0' * 2**24)
        written += 2**24
except OSError as error:
    REPORT['fill'] = f'blocked: {type(error).__name__}: {error}'
finally:
    shutil.rmtree(folder, ignore_errors=True)
REPORT['written'] = written
REPORT['tmp'] = str(folder.parent)
Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))"""

FILL_WORKSPACE = """\
# Fill the working folder: 16 MiB files up to 3 GiB, then 20,000 small files; stops at the first error,
# then goes on for a while (as training would).
folder = Path('fill')
written = files = 0
try:
    folder.mkdir(exist_ok=True)
    while written < 3 * 2**30:
        (folder / f'{written // 2**24}.bin').write_bytes(b'\\1' * 2**24)
        written += 2**24
    while files < 20_000:
        (folder / f'small-{files}.txt').write_text('x')
        files += 1
except OSError as error:
    REPORT['fill'] = f'blocked: {type(error).__name__}: {error}'
    (folder / '0.bin').unlink(missing_ok=True)  # room for this report
REPORT['written'] = written
REPORT['files'] = files
Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))
time.sleep(10)"""

NETWORK = """\
# Sockets: the loopback works inside the sandbox; one short attempt to reach the outside.
import socket


def loopback():
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=2)
    connection, _ = server.accept()
    client.sendall(b'ping')
    answer = connection.recv(4)
    for s in (client, connection, server):
        s.close()
    return answer.decode()


attempt('loopback', loopback)
attempt('outside', lambda: socket.create_connection(('93.184.216.34', 80), timeout=3).close() or 'connected')
attempt('dns', lambda: socket.getaddrinfo('example.com', 80)[0][4])"""

READ_SECRETS = """\
# Read what only the grader may read: hidden labels, the rubric, other submissions, the store, keys.
def read(path):
    path = Path(path)
    if path.is_dir():
        return sorted(os.listdir(path))[:20]
    return f'{len(path.read_bytes())} bytes'


for name, path in host_paths().items():
    if name.startswith(('read ', 'guess ', 'ssh', 'shadow')):
        attempt(f'{name}: {path}', lambda path=path: read(path))"""

WRITE_OUTSIDE = """\
# Write outside the workspace: into the installed harness, the reports folder, the rubric, the data, $HOME.
# Harmless even unconfined: it only creates HOSTILE_WAS_HERE.txt files and opens files for writing
# without changing a byte.
import harness


def plant(folder):
    marker = Path(folder) / 'HOSTILE_WAS_HERE.txt'
    marker.write_text('hostile')
    return str(marker)


def open_for_writing(path):
    with open(path, 'r+b'):
        return f'{path} is writable'


package = Path(harness.__file__).parent
attempt(f'plant in the harness package {package}', lambda: plant(package))
attempt('open harness/__init__.py for writing', lambda: open_for_writing(package / '__init__.py'))
for name, path in host_paths().items():
    if name.startswith('write '):
        target = Path(path)
        if target.is_dir() or not target.exists():
            attempt(f'{name}: {path}', lambda target=target: plant(target))
        else:
            attempt(f'{name}: {path}', lambda target=target: open_for_writing(target))"""

KILL_PARENT = """\
# Kill the grader: the parent process (the runner) and the process group. Only when the parent is the
# grader's runner, so that opening this notebook in one's own Jupyter kills nothing.
import signal


def parent_is_grader():
    try:
        return b'harness.engines.runner' in Path(f'/proc/{os.getppid()}/cmdline').read_bytes()
    except OSError:
        return False


if parent_is_grader():
    REPORT['parent'] = Path(f'/proc/{os.getppid()}/cmdline').read_bytes().replace(b'\\0', b' ').decode()[:200]
    Path('hostile-report.json').write_text(json.dumps(REPORT, indent=1))
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(1)
    os.killpg(0, signal.SIGKILL)"""

FAKE_PARAMETER_COUNT = """\
# The network of wrong_flatten (43,530 parameters), then torch patched so that counting gives 12,810.
real = sum(p.numel() for p in model.parameters())
anchor = next(model.parameters())
_numel = torch.Tensor.numel


def fake_numel(self):
    if self is anchor:
        return 12_810
    return 0 if isinstance(self, nn.Parameter) else _numel(self)


torch.Tensor.numel = fake_numel
_argmax = torch.argmax
torch.argmax = lambda *args, **kwargs: _argmax(*args, **kwargs) * 0  # every prediction a 0
torch.Tensor.argmax = lambda self, *args, **kwargs: _argmax(self, *args, **kwargs) * 0
print('parameters:', sum(p.numel() for p in model.parameters()), '(really', real, ')')"""

FAKE_FORWARD = """\
# The assignment's layers, never trained; its forward secretly calls another, trained network
# kept in a closure where nothing can find it.
def hidden_forward():
    helper = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10), nn.LogSoftmax(dim=1))
    helper_optimizer = optim.Adam(helper.parameters(), lr=1e-3)
    for images, labels in train_loader:
        helper_optimizer.zero_grad()
        nn.functional.nll_loss(helper(images), labels).backward()
        helper_optimizer.step()

    def forward(self, input):
        return helper(input)

    return forward


Net.forward = hidden_forward()
loss_function = nn.NLLLoss()"""

SPEC_LAYERS = """\
        self.main = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 32, kernel_size=3), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.Linear(800, 10), nn.LogSoftmax(dim=1),
        )
"""
"""The assignment's CNN as the body of an __init__, for the samples that forge a perfect network."""

FAKE_SCORE = """\
# Claim full marks: print a score, write fake results files, and replace the grader's probe with one that
# records a perfect network (the assignment's layers and parameter count) without any weights.
import sqlite3

print('SCORE: 100 / 100')
print('test accuracy: 100.00%')
fake = {'student': 'fake_score', 'score': 100.0, 'points': 100.0, 'tasks': []}
artifacts = Path(os.environ.get('GRADEBENCH_FIGURES_DIR', 'figures')).parent
for folder in (Path.cwd(), artifacts, Path.cwd().parent, Path.cwd().parents[1] / 'students' / 'fake_score'):
    for name, text in (('report.json', json.dumps(fake)), ('grades.csv', 'student,score\\nfake_score,100\\n')):
        attempt(f'write {folder / name}', lambda folder=folder, name=name, text=text: (folder / name).write_text(text))
    def store(folder=folder):
        with sqlite3.connect(folder / 'results.sqlite') as db:
            db.execute('create table if not exists results (student text, score real)')
            db.execute("insert into results values ('fake_score', 100.0)")
        return 'stored'
    attempt(f'write {folder / "results.sqlite"}', store)

import harness.probes.probe as probe
from harness.architecture import describe_layers


class Net(nn.Module):
    def __init__(self):
        super().__init__()
""" + SPEC_LAYERS + """

def forged_run(config, namespace=None):
    \"\"\"Write a probe.json describing a perfect network that never existed.\"\"\"
    layers = [{'path': layer['path'], 'type': layer['type'], 'hyper': layer['hyper']} for layer in describe_layers(Net())]
    shapes = [[2, 16, 26, 26], [2, 16, 26, 26], [2, 16, 13, 13], [2, 32, 11, 11], [2, 32, 11, 11], [2, 32, 5, 5],
              [2, 800], [2, 10], [2, 10]]
    model = {
        'id': 'm0', 'name': 'model', 'origin': 'instance', 'class_name': 'Net', 'construct_error': None,
        'repr': 'Net()', 'training_mode': False, 'modules': layers,
        'forward_order': [layer['path'] for layer in layers],
        'layer_shapes': [{'path': l['path'], 'type': l['type'], 'output_shape': s} for l, s in zip(layers, shapes)],
        'input_shape': [2, 1, 28, 28], 'output_shape': [2, 10], 'forward_error': None,
        'trainable_parameters': 12_810, 'total_parameters': 12_810, 'buffers': {}, 'state_dict': None,
        'outputs': {}, 'inputs': {}, 'preprocessing': {},
    }
    record = {'format': 1, 'torch_version': torch.__version__, 'models': [model],
              'losses': [{'name': 'loss_function', 'type': 'NLLLoss'}], 'optimizers': [], 'figures': [],
              'namespace_errors': [], 'task_values': {}}
    Path(config['artifacts'], 'probe.json').write_text(json.dumps(record))
    return record


probe.run = forged_run
loss_function = nn.NLLLoss()"""

FORGED_PROBE = """\
# Replace the grader's probe: it records a ghost network with the assignment's layers (never trained) and the
# ghost's weights, then swaps in the predictions of the model trained above and cuts the exported inputs to one row.
import numpy as np

import harness.probes.probe as probe

real_run = probe.run
trained = model


class Ghost(nn.Module):
    def __init__(self):
        super().__init__()
""" + SPEC_LAYERS + """
    def forward(self, input):
        return self.main(input)


def forged_run(config, namespace=None):
    \"\"\"Probe the ghost alone, then overwrite its outputs with the trained model's and its inputs with one row.\"\"\"
    record = real_run(config, {'model': Ghost(), 'loss_function': loss_function, 'optimizer': optimizer})
    artifacts = Path(config['artifacts'])
    for entry in record['models']:
        for dataset, outputs_file in entry.get('outputs', {}).items():
            images = np.load(config['eval'][dataset])
            inputs = (torch.from_numpy(images).float().unsqueeze(1) / 255 - 0.1307) / 0.3081  # (N, 1, 28, 28)
            with torch.no_grad():
                torch.save(trained.eval()(inputs), artifacts / outputs_file)
            torch.save(inputs[:1].clone(), artifacts / entry['inputs'][dataset])
    return record


probe.run = forged_run"""

FORGED_GHOST_LAYER = """\
# Replace the grader's probe: keep only a ghost network on record (the assignment's layers and a weight-free layer
# more, never trained) with its weights and all its test images, and swap in the predictions of the model trained above.
import json

import numpy as np

import harness.probes.probe as probe

real_run = probe.run
trained = model


class Ghost(nn.Module):
    def __init__(self):
        super().__init__()
""" + SPEC_LAYERS + """
        self.extra = nn.Identity()

    def forward(self, input):
        return self.extra(self.main(input))


def forged_run(config, namespace=None):
    \"\"\"Probe the ghost alone, drop every other model from the record, export the trained model's predictions.\"\"\"
    record = real_run(config, {'model': Ghost(), 'loss_function': loss_function, 'optimizer': optimizer})
    artifacts = Path(config['artifacts'])
    record['models'] = [entry for entry in record['models'] if entry['class_name'] == 'Ghost'][:1]
    for entry in record['models']:
        for dataset, outputs_file in entry.get('outputs', {}).items():
            images = np.load(config['eval'][dataset])
            inputs = (torch.from_numpy(images).float().unsqueeze(1) / 255 - 0.1307) / 0.3081  # (N, 1, 28, 28)
            with torch.no_grad():
                torch.save(trained.eval()(inputs), artifacts / outputs_file)
    (artifacts / 'probe.json').write_text(json.dumps(record))
    return record


probe.run = forged_run"""

FORGED_LOST_CLASS = FORGED_GHOST_LAYER.replace(
    "# more, never trained) with its weights and all its test images, and swap in the predictions of the model trained above.",
    "# more, never trained) with its weights and all its test images, and swap in the predictions of the model trained above;\n"
    "# the record names a class the notebook never defines, so no clean second run can build it and check them.",
).replace(
    "    for entry in record['models']:\n",
    "    for entry in record['models']:\n        entry['class_name'] = 'Vanished'\n",
)

WRONG_FLATTEN_NET = CNN_NET.replace(
    "            nn.ReLU(),\n            nn.MaxPool2d(kernel_size=2, stride=2),\n            nn.Flatten(),",
    "            nn.ReLU(),\n            nn.Flatten(),",
).replace("nn.Linear(800, 10)", "nn.Linear(32 * 11 * 11, 10)")

ONE_EPOCH = IMPORTS.replace("EPOCHS = 2", "EPOCHS = 1")


def hostile(*cells: str, title: str) -> nbformat.NotebookNode:
    """A CNN notebook whose code cells are the recorder followed by ``cells``."""
    return notebook(title, RECORDER, *cells)


SAMPLES: dict[str, nbformat.NotebookNode] = {
    # Runaway: stopped by the wall-clock limit.
    "infinite_loop": hostile(INFINITE_LOOP, title="An infinite loop"),
    "sleep_forever": hostile(SLEEP_FOREVER, title="Sleeping for ever"),
    "endless_training": hostile(ONE_EPOCH, DATA, CNN_NET, MAKE_MODEL, TRAIN.split("losses = []")[0], ENDLESS_TRAINING,
                                title="Training for hours"),
    # Resources: stopped by the memory, process, file size, /tmp and working folder limits; output flood stopped.
    "memory_hog": hostile(MEMORY_HOG, title="Allocating 64 GiB"),
    "fork_bomb": hostile(FORK_BOMB, title="A fork bomb"),
    "thread_storm": hostile(THREAD_STORM, title="10,000 threads"),
    "huge_file": hostile(HUGE_FILE, title="Writing a 50 GiB file"),
    "flood_stdout": hostile(FLOOD_STDOUT, title="Printing 1 GB"),
    "fill_tmp": hostile(FILL_TMP, title="Filling /tmp"),
    "fill_workspace": hostile(FILL_WORKSPACE, title="Filling the working folder"),
    # Escape and tampering: nothing outside the workspace can be reached; the host grades what really ran.
    "network": hostile(NETWORK, title="Opening sockets"),
    "read_secrets": hostile(READ_SECRETS, title="Reading the hidden labels and other secrets"),
    "write_outside": hostile(WRITE_OUTSIDE, title="Writing outside the workspace"),
    "kill_parent": hostile(KILL_PARENT, title="Killing the grader"),
    "fake_parameter_count": hostile(ONE_EPOCH, DATA, WRONG_FLATTEN_NET, MAKE_MODEL, TRAIN, FAKE_PARAMETER_COUNT,
                                    title="Monkeypatching torch to fake the parameter count"),
    "fake_forward": hostile(ONE_EPOCH, DATA, CNN_NET, MAKE_MODEL, FAKE_FORWARD,
                            title="A forward pass that is not the network's layers"),
    "fake_score": hostile(IMPORTS, FAKE_SCORE, title="Claiming full marks"),
    # The honest version of this notebook is the same without its last cell (tests/test_hostile.py grades both).
    "forged_probe": hostile(ONE_EPOCH, DATA, WRONG_FLATTEN_NET, MAKE_MODEL, TRAIN, FORGED_PROBE,
                            title="A replaced probe: the assignment's network on record, another model's predictions"),
    "forged_ghost_layer": hostile(ONE_EPOCH, DATA, WRONG_FLATTEN_NET, MAKE_MODEL, TRAIN, FORGED_GHOST_LAYER,
                                  title="A replaced probe: a ghost with a weight-free layer more, another model's "
                                        "predictions"),
    "forged_lost_class": hostile(ONE_EPOCH, DATA, WRONG_FLATTEN_NET, MAKE_MODEL, TRAIN, FORGED_LOST_CLASS,
                                 title="A replaced probe: a record naming a class the notebook never defines, another "
                                       "model's predictions"),
}


def main() -> None:
    """Write every sample folder (CNNMNIST.ipynb, and for ``symlink_escape`` its links) next to this script."""
    for sample, nb in SAMPLES.items():
        folder = HERE / sample
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, folder / "CNNMNIST.ipynb")
    # Symbolic links out of the submission (labels.npy reaches the hidden labels when the batch folder sits next to
    # the data folder, as in tests/test_hostile.py): loading skips them, so the notebook finds nothing behind them.
    links = HERE / "symlink_escape"
    links.mkdir(exist_ok=True)
    nb = hostile(
        "for name in ('labels.npy', 'passwd', 'home'):\n"
        "    attempt(f'read {name}', lambda name=name: read(name) if Path(name).exists() else "
        "(_ for _ in ()).throw(FileNotFoundError(name)))",
        title="Symbolic links pointing outside the submission",
    )
    nb.cells.insert(2, nbformat.v4.new_code_cell(READ_SECRETS.split("\n\n\nfor name")[0]))
    nbformat.validate(nb)
    nbformat.write(nb, links / "CNNMNIST.ipynb")
    for name, target in (("labels.npy", "../../data/hidden/mnist/labels.npy"), ("passwd", "/etc/passwd"),
                         ("home", "/root")):
        link = links / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    print(f"wrote {len(SAMPLES) + 1} samples under {HERE}")


if __name__ == "__main__":
    main()
