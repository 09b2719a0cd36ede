"""The benchmark's tables (Markdown, as docs/benchmarks.md shows them)."""
from __future__ import annotations


def fmt(seconds: float) -> str:
    return f'{seconds * 1e3:.0f} ms' if seconds < 10 else f'{seconds:.1f} s'


def print_backbone(results: dict) -> None:
    print(f"# {results['arch']} {results['shape'][0]}x{results['shape'][1]} batch {results['batch']} "
          f"{results['device']} {results['dtype']}{' with_cp' if results['with_cp'] else ''}")
    print(f"# {results['machine']}")
    if results.get('matmul_gflops'):
        rates = ', '.join(f'{rate:.0f} GFLOP/s ({mode} rounds)' for mode, rate in results['matmul_gflops'].items())
        print(f"# {results['dtype']} 2048x2048 matmul, timed in the same rounds: {rates}; "
              f"ours {results['gmacs_per_image']:.1f} GMACs/image")
    by_mode = {}
    for row in results['rows']:
        by_mode.setdefault(row['mode'], {})[row['impl']] = row
    # "ceiling": the largest speed-up over that row that any implementation of the same FLOPs could reach,
    # i.e. one running entirely at the matmul's throughput (1 / its "% of matmul").
    print('| mode | impl | median | images/s | speed-up of ours | peak MiB | % of matmul | ceiling |')
    print('|---|---|---|---|---|---|---|---|')
    for mode, rows in by_mode.items():
        ours = rows.get('ours')
        for name, row in rows.items():
            ratio = f"{row['median_s'] / ours['median_s']:.2f}x" if ours and name != 'ours' else ''
            peak = f"{row['peak_mib']:.0f}" if row.get('peak_mib') is not None else ''
            fraction = row.get('matmul_fraction')
            frac = f'{100 * fraction:.0f}%' if fraction else ''
            ceiling = f'{1 / fraction:.2f}x' if fraction and name != 'ours' else ''
            print(f"| {mode} | {name} | {fmt(row['median_s'])} | {row['images_per_s']:.2f} | {ratio} | "
                  f'{peak} | {frac} | {ceiling} |')


def print_detector(results: dict) -> None:
    print(f"# detector {results['config']} vs {results['ref_config']} "
          f"{results['shape'][0]}x{results['shape'][1]} batch 1")
    print(f"# {results['machine']}")
    print('| mode | impl | median | speed-up of ours |')
    print('|---|---|---|---|')
    medians = {(r['mode'], r['impl']): r['median_s'] for r in results['rows']}
    for row in results['rows']:
        ours = medians.get((row['mode'], 'ours'))
        ratio = f"{row['median_s'] / ours:.2f}x" if ours and row['impl'] != 'ours' else ''
        print(f"| {row['mode']} | {row['impl']} | {fmt(row['median_s'])} | {ratio} |")


