#!/usr/bin/env python3
"""Tests of layers.py's path reading and cycle finder on tiny fixture workspaces."""

import contextlib
import io
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import layers  # noqa: E402


def workspace(files: dict[str, str]) -> tempfile.TemporaryDirectory:
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    base = {
        "Cargo.toml": '[workspace]\nmembers = [".", "lib2"]\n[package]\nname = "top"\n',
        "lib2/Cargo.toml": '[package]\nname = "lib2"\n',
        "lib2/src/lib.rs": "pub mod x;\n",
        "lib2/src/x.rs": "",
    }
    for rel, text in {**base, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp


def run(files: dict[str, str]) -> tuple[int, str]:
    with workspace(files) as root:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = layers.main(["layers.py", root])
        return code, out.getvalue()


class PathReading(unittest.TestCase):
    def test_use_trees_name_every_path(self):
        text = "use super::{a::X, b::{Y, Z}, c};"
        paths, _ = layers.parse_tree(text, text.index("super"))
        self.assertEqual(
            paths,
            [["super", "a", "X"], ["super", "b", "Y"], ["super", "b", "Z"], ["super", "c"]],
        )

    def test_turbofish_ends_a_path(self):
        text = "crate::a::parse::<u8>(x)"
        self.assertEqual(layers.parse_tree(text, 0)[0], [["crate", "a", "parse"]])

    def test_comments_and_strings_are_not_paths(self):
        text = layers.blank('// crate::a\nlet s = "super::b";\n/* self::c */ x')
        self.assertNotIn("::", text)

    def test_super_climbs_from_the_scope(self):
        self.assertEqual(layers.resolve(["m", "a"], ["super", "b", "X"]), ["m", "b", "X"])
        self.assertEqual(layers.resolve(["m", "a", "tests"], ["super", "super", "b"]), ["m", "b"])
        self.assertIsNone(layers.resolve([], ["super", "b"]))


class Cycles(unittest.TestCase):
    def test_finder_reports_only_strongly_connected_sets(self):
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}}
        self.assertEqual(layers.cycles(graph), [["a", "b", "c"], ["e", "f"]])
        self.assertEqual(layers.cycles({"a": {"b"}, "b": {"c"}, "d": {"c"}}), [])

    def test_layered_workspace_passes(self):
        code, out = run(
            {
                "src/lib.rs": "pub mod a;\npub mod b;\npub mod leaf;\n",
                "src/a.rs": "use crate::leaf::Thing;\n// crate::b::f is not a use\n",
                "src/b.rs": "use crate::a::X;\nuse crate::leaf::Other;\n",
                "src/leaf.rs": "pub struct Thing;\n",
            }
        )
        self.assertEqual(code, 0, out)
        self.assertIn("no sibling import cycle in top, lib2", out)

    def test_top_level_cycle_fails_with_the_lines(self):
        code, out = run(
            {
                "src/lib.rs": "pub mod a;\npub mod b;\n",
                "src/a.rs": "fn f() { crate::b::g(); }\n",
                "src/b.rs": "\n\nuse crate::a::f;\n",
            }
        )
        self.assertEqual(code, 1, out)
        self.assertIn("sibling import cycle in top (crate root): a <-> b", out)
        self.assertIn("b -> a  (src/b.rs:3)", out)

    def test_nested_cycle_through_super_and_a_test_module(self):
        code, out = run(
            {
                "src/lib.rs": "pub mod m;\n",
                "src/m/mod.rs": "pub mod a;\npub mod b;\npub struct Error;\n",
                "src/m/a.rs": "use super::{b::Y, Error};\n",
                "src/m/b.rs": "mod tests {\n    use super::super::a::X;\n}\n",
            }
        )
        self.assertEqual(code, 1, out)
        self.assertIn("(m): a <-> b", out)

    def test_reexport_does_not_hide_an_edge(self):
        code, out = run(
            {
                "src/lib.rs": "pub mod m;\n",
                "src/m/mod.rs": "mod a;\nmod b;\npub use a::Args;\n",
                "src/m/a.rs": "use super::b::parse;\n",
                "src/m/b.rs": "use super::Args;\n",
            }
        )
        self.assertEqual(code, 1, out)
        self.assertIn("b -> a", out)

    def test_parent_items_and_children_are_not_siblings(self):
        code, out = run(
            {
                "src/lib.rs": "pub mod m;\n",
                "src/m/mod.rs": "pub mod a;\nuse self::a::X;\npub struct Error;\n",
                "src/m/a.rs": "use super::Error;\nuse crate::m::Error as E;\n",
            }
        )
        self.assertEqual(code, 0, out)

    def test_binaries_are_not_the_library(self):
        files = {
            "src/lib.rs": "pub mod a;\n",
            "src/a.rs": "",
            "src/main.rs": "use crate::a::X;\n",
            "src/bin/tool.rs": "use crate::a::Y;\n",
        }
        with workspace(files) as root:
            crate = layers.Crate("top", Path(root) / "src", Path(root))
        self.assertEqual(crate.modules, {(), ("a",)})
        self.assertEqual(crate.refs, [])


if __name__ == "__main__":
    unittest.main()
