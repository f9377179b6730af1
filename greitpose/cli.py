"""The `greitpose` command: a thin layer of options over the library API."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from greitpose.errors import GreitposeError

app = typer.Typer(help="2D multi-person pose estimation with Greit-HRNet.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()


@app.callback()
def root() -> None:
    """2D multi-person pose estimation with Greit-HRNet."""


@app.command()
def info(
    model: Annotated[Optional[str], typer.Argument(help="Model name; all registered models when omitted.")] = None,
    input_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH of the input crop.")] = "256x192",
    keypoints: Annotated[int, typer.Option(help="Number of keypoint heatmaps (17 COCO, 16 MPII).")] = 17,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Parameters and GMACs of one model or of every registered one."""
    from greitpose.models import get_config, model_names, parse_input_size
    from greitpose.models.complexity import measure

    size = parse_input_size(input_size)
    names = [model] if model else model_names()
    rows = [measure(get_config(n, keypoints, size)).to_dict() for n in names]
    if as_json:
        out.print_json(json.dumps(rows[0] if model else rows))
        return
    table = Table(title=f"models at {size[0]}x{size[1]}, {keypoints} keypoints")
    for col in ("model", "params (M)", "GMACs", "heatmap"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["model"], f"{r['params_m']:.3f}", f"{r['gmacs']:.3f}",
                      "x".join(map(str, r["heatmap_size"])))
    out.print(table)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1, never a traceback."""
    try:
        app()
    except GreitposeError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
