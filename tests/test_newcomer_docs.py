"""The newcomer's pages run as written (issue 24): the paths docs/look_inside.md and get_started.md give after
`make demo` are the ones it leaves, no page names a path of the machine it was written on, and
get_started.md §6 installs the stack of §1 with the versions tools/setup_env.sh installs."""
from __future__ import annotations

import re
from pathlib import Path

from test_docs import DOCS, shell_commands

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = 'work_dirs/demo/'
# Flags whose value is a path the command writes, not one it reads.
OUTPUT_FLAGS = ('--out', '--out-dir', '--work-dir', '--show-dir')


def test_no_page_names_a_machine_path():
    found = [(doc.name, match) for doc in DOCS
             for match in re.findall(r'(?<![\w.~-])/(?:work|tmp|root|home|Users)/[\w./-]*', doc.read_text())]
    assert not found, found


def _demo_paths_read(command: str) -> list[str]:
    words = command.split()
    return [word for index, word in enumerate(words)
            if word.startswith(DEMO_DIR) and not (index and words[index - 1] in OUTPUT_FLAGS)]


def test_the_demo_paths_the_pages_read_are_the_ones_make_demo_leaves(tmp_path):
    """`make demo` = `tools/demo.py det` with its defaults: the generated data and config under
    work_dirs/demo/, and the checkpoint of its last iteration. No page's command writes into that folder."""
    from pvt_det.config.loading import shipped_config
    from pvt_det.tools import demo
    iters = demo.parse_args(['det']).iters or 300
    work_dir = tmp_path / DEMO_DIR
    config = demo.write_det_demo(work_dir, shipped_config('retinanet_pvt_v2_b0_fpn.py'), iters)
    assert f'checkpoint: {{work_dir / f"iter_{{iters}}.pth"}}' in Path(demo.__file__).read_text()
    left = {str(path.relative_to(tmp_path)) for path in work_dir.rglob('*')} | {f'{DEMO_DIR}iter_{iters}.pth'}
    commands = shell_commands()
    read = [(doc, path) for doc, command in commands for path in _demo_paths_read(command)]
    assert {doc for doc, _path in read} >= {'get_started.md', 'look_inside.md'}, read
    assert [(doc, path) for doc, path in read if path.rstrip('/') not in left] == []
    assert str(config.relative_to(tmp_path)) in {path for _doc, path in read}  # one demo config, used by all
    writers = [(doc, command) for doc, command in commands
               if re.search(r'--(?:work-dir|out-dir|out)\s+' + re.escape(DEMO_DIR.rstrip('/')) + r'(?:\s|$)',
                            command)]
    assert writers == [], writers


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r'(?<![\w-])(torch|mmengine|mmcv|mmdet|mmsegmentation)==([\w.]+)', text))


def test_own_project_section_installs_the_stack_of_setup_env():
    page = (REPO / 'docs' / 'get_started.md').read_text()
    section = page[page.index('## 6. Use pvt_det from your own project'):page.index('## Next')]
    commands = '\n'.join(block for block in re.findall(r'^```bash\n(.*?)^```', section, re.M | re.S))
    installs = [line for line in commands.splitlines() if line.startswith('pip install')]
    setup_env = (REPO / 'tools' / 'setup_env.sh').read_text()
    assert _pins(commands) == _pins(setup_env) and len(_pins(setup_env)) == 5, (_pins(commands), _pins(setup_env))
    assert any('--no-deps' in line and 'pvt_det' in line for line in installs), installs
    for package in ('ftfy', 'regex', 'pycocotools', 'numpy'):
        assert any(re.search(rf'(?<![\w-]){package}(?![\w-])', line) for line in installs), package
