from pathlib import Path

from alma.memory.loading import DesignSource, design_id, read_design, reference_design


def test_design_id_ignores_whitespace_noise_and_the_archive_header(tmp_path: Path) -> None:
    source = "# my own comment\nfrom alma.memory import MemoryDesign\n"
    assert design_id(source) == design_id(source.replace("\n", "   \r\n") + "\n\n")
    copy = f"# alma memory design {design_id(source)}\n# name: x\n\n{source}"
    assert design_id(copy) == design_id(source)
    assert design_id("# something else\n" + source) != design_id(source)


def test_archived_copy_loads_with_the_same_id(tmp_path: Path) -> None:
    design = reference_design("trajectory_retrieval")
    path = tmp_path / f"{design.id}.py"
    path.write_text(f"# alma memory design {design.id}\n# idea: -\n\n{design.source}")
    assert read_design(path).id == design.id
    assert DesignSource("x", design.source).id == design.id
