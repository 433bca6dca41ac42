"""A small, safe XML tree builder on the standard library's expat parser.

Labeling exports come from strangers, so the parser refuses everything that lets an XML
file reach outside itself or grow without bound:

* any ``<!DOCTYPE …>`` (and with it every DTD, internal subset and entity declaration):
  refused at the declaration, before a byte of it is interpreted — this stops
  "billion laughs" entity expansion and external entities (XXE) alike;
* entity declarations and external entity references (refused again, should a
  DOCTYPE ever get through);
* parameter entities (expat is told never to parse them);
* nesting deeper than :attr:`defectlab.limits.Limits.max_nesting_depth` elements;
* files over :attr:`defectlab.limits.Limits.max_file_bytes`.

Every :class:`Node` knows the line and column where its start tag begins, so a reader can
name the place of any problem it finds later. Expat's syntax errors (a truncated file, a
stray ``<``) become :class:`~defectlab.errors.ParseError` with the line and column.

Examples
--------
>>> root = parse_xml(b'<a x="1">\\n  <b>hi</b>\\n</a>', "demo.xml")
>>> root.tag, root.attrib, root.children[0].text, root.children[0].line
('a', {'x': '1'}, 'hi', 2)
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterator
from xml.parsers import expat

from .errors import ParseError
from .limits import DEFAULTS, check_file_bytes, current, hint

__all__ = ["Node", "parse_xml", "parse_xml_file", "root_tag", "MAX_DEPTH"]

#: The default deepest element nesting (CVAT files are 6 levels deep); the limit in force is
#: :attr:`defectlab.limits.Limits.max_nesting_depth`.
MAX_DEPTH = DEFAULTS.max_nesting_depth

_READ_CHUNK = 1 << 16


class Node:
    """One XML element: tag, attributes, children, text and where it starts.

    Attributes
    ----------
    tag : str
        The element name.
    attrib : dict of str to str
        Attributes, values as written (after XML's attribute-value normalization).
    children : list of Node
        Child elements in document order.
    text : str
        All character data directly inside the element (between its children too),
        concatenated; ``""`` when there is none.
    line, column : int
        1-based position of the element's ``<`` in the file.
    """

    __slots__ = ("tag", "attrib", "children", "text", "line", "column")

    def __init__(self, tag: str, attrib: dict[str, str], line: int, column: int) -> None:
        self.tag = tag
        self.attrib = attrib
        self.children: list[Node] = []
        self.text = ""
        self.line = line
        self.column = column

    def __repr__(self) -> str:
        return f"<Node {self.tag} line {self.line}: {len(self.children)} children>"

    def __iter__(self) -> Iterator["Node"]:
        return iter(self.children)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The attribute ``key``, or ``default`` when absent."""
        return self.attrib.get(key, default)

    def find(self, tag: str) -> "Node | None":
        """The first child called ``tag``, or None."""
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def findall(self, tag: str) -> list["Node"]:
        """All children called ``tag``, in order."""
        return [child for child in self.children if child.tag == tag]

    def findtext(self, tag: str, default: str | None = None) -> str | None:
        """The text of the first child called ``tag``, or ``default`` when there is none."""
        child = self.find(tag)
        return default if child is None else child.text


class _StopParsing(Exception):
    """Raised inside a handler to end a parse early (see :func:`root_tag`)."""


def _new_parser(path: str) -> expat.XMLParserType:
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = _READ_CHUNK
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def where() -> dict[str, int]:
        return {"line": parser.CurrentLineNumber, "column": parser.CurrentColumnNumber + 1}

    def refuse_doctype(name: str, *_args: object) -> None:
        raise ParseError(
            path,
            f"refusing a <!DOCTYPE {name}> declaration: DTDs and entities are not allowed "
            "in a labeling export (they can expand without bound or read other files)",
            **where(),
        )

    def refuse_entity(name: str | None, *_args: object) -> None:
        raise ParseError(path, f"refusing the entity declaration {name!r}", **where())

    def refuse_external(_context: str, _base: str | None, system_id: str | None, _pub: str | None) -> int:
        raise ParseError(path, f"refusing the external entity {system_id!r}", **where())

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_external
    return parser


def _expat_error(path: str, err: expat.ExpatError) -> ParseError:
    message = expat.ErrorString(err.code) or "malformed XML"
    if err.code in (
        expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS],
        expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
        expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR],
    ):
        message += " (the file ends too early: is it truncated?)"
    return ParseError(path, f"malformed XML: {message}", line=err.lineno, column=err.offset + 1)


def parse_xml(source: bytes | BinaryIO, path: str) -> Node:
    """Parse an XML document into a tree of :class:`Node`.

    Parameters
    ----------
    source : bytes or binary file object
        The document. A file object is read in chunks of 64 KiB.
    path : str
        The name used in error messages (a file path, or ``archive.zip!member``).

    Returns
    -------
    Node
        The root element.

    Raises
    ------
    ParseError
        Malformed or truncated XML, a DOCTYPE/DTD, an entity declaration or an external
        entity, or nesting deeper than ``max_nesting_depth``; the error names ``path``, the
        line and the column.
    """
    parser = _new_parser(path)
    max_depth = current().max_nesting_depth
    stack: list[Node] = []
    texts: list[list[str]] = []
    root: list[Node] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = Node(tag, attrib, parser.CurrentLineNumber, parser.CurrentColumnNumber + 1)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)
        texts.append([])
        if len(stack) > max_depth:
            raise ParseError(
                path,
                f"elements nested deeper than {max_depth} levels: not a labeling export "
                f"({hint('max_nesting_depth')})",
                line=node.line,
                column=node.column,
            )

    def end(_tag: str) -> None:
        node = stack.pop()
        parts = texts.pop()
        if parts:
            node.text = parts[0] if len(parts) == 1 else "".join(parts)

    def chars(data: str) -> None:
        if texts:
            texts[-1].append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            parser.Parse(bytes(source), True)
        else:
            while True:
                chunk = source.read(_READ_CHUNK)
                if not chunk:
                    break
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as err:
        raise _expat_error(path, err) from err
    except ParseError:
        raise
    except LookupError as err:  # <?xml ... encoding="no-such-codec"?>
        raise ParseError(path, f"the XML declaration names an encoding Python does not know ({err}); "
                         "save the file as UTF-8", line=1) from None
    except ValueError as err:  # encoding="utf-7" / "shift_jis": expat reads no multi-byte codec but its own
        raise ParseError(path, f"the XML declaration names an encoding the XML parser cannot read ({err}); "
                         "save the file as UTF-8", line=1) from None
    return root[0]


def root_tag(head: bytes) -> str | None:
    """The name of the root element of a document whose first bytes are ``head``.

    Only the start of a file is needed (a few KiB). Returns None when ``head`` is not the
    start of a well-formed XML document, holds a DOCTYPE, or ends before the root element.
    """
    parser = _new_parser("<sniff>")
    found: list[str] = []

    def start(tag: str, _attrib: dict[str, str]) -> None:
        found.append(tag)
        raise _StopParsing

    parser.StartElementHandler = start
    try:
        parser.Parse(head, False)
    except _StopParsing:
        return found[0]
    except (expat.ExpatError, ValueError, LookupError):  # ParseError is a ValueError
        return None
    return None


def parse_xml_file(path: str, display: str | None = None) -> Node:
    """Parse the XML file at ``path`` (see :func:`parse_xml`); ``display`` names it in errors."""
    name = display or path
    try:
        with open(path, "rb") as fh:
            try:
                check_file_bytes(os.fstat(fh.fileno()).st_size)
            except ValueError as err:
                raise ParseError(name, str(err)) from None
            return parse_xml(fh, name)
    except OSError as err:
        raise ParseError(name, f"cannot read the file ({err.strerror or err})") from err
