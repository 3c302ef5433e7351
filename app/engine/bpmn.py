"""Parse BPMN 2.0 XML, as Camunda Modeler 5 writes it for Zeebe, into an immutable model.

Supported inside the single executable process: none start event (exactly one), none end
events, service tasks (`zeebe:taskDefinition`, `zeebe:taskHeaders`), exclusive and parallel
gateways, interrupting error boundary events on service tasks, and sequence flows (FEEL
conditions only on flows leaving an exclusive gateway). Lanes, text annotations,
associations and groups are ignored, as is the diagram part. Anything else is refused with
UNSUPPORTED_ELEMENT; structural problems are all collected and refused with INVALID_BPMN.
"""
from __future__ import annotations

import hashlib
from collections import Counter, deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping
from xml.etree.ElementTree import Element as XmlElement

import defusedxml
import defusedxml.ElementTree as SafeET

from app.engine import feel

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
MAX_BPMN_BYTES = 1024 * 1024
DEFAULT_RETRIES = 3
MAX_RETRIES = 100

START, END, TASK = "startEvent", "endEvent", "serviceTask"
XOR, AND, BOUNDARY = "exclusiveGateway", "parallelGateway", "boundaryEvent"
SUPPORTED_TYPES = (START, END, TASK, XOR, AND, BOUNDARY)
# Purely descriptive process children: they do not change how a model runs.
IGNORED_PROCESS_CHILDREN = {"documentation", "extensionElements", "laneSet", "textAnnotation", "association",
                            "group"}
COMMON_CHILDREN = {"documentation", "extensionElements", "incoming", "outgoing"}
ZEEBE_EXTENSIONS = {TASK: {"taskDefinition", "taskHeaders", "properties"}}
DEFAULT_ZEEBE_EXTENSIONS = {"properties"}  # modeler metadata only


class BpmnError(Exception):
    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class NoPathError(Exception):
    """An exclusive gateway had no true condition and no default flow."""

    def __init__(self, element_id: str):
        super().__init__(f"no outgoing flow of gateway '{element_id}' matched and it has no default flow")
        self.element_id = element_id


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    target: str
    condition: feel.Expression | None
    condition_text: str | None
    name: str | None = None


@dataclass(frozen=True)
class Element:
    id: str
    type: str
    name: str | None
    job_type: str | None = None
    retries: int | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    default_flow: str | None = None
    attached_to: str | None = None
    error_code: str | None = None  # on an error boundary event: None catches every code
    outgoing: tuple[str, ...] = ()
    incoming: tuple[str, ...] = ()
    boundary_events: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErrorDefinition:
    id: str
    name: str | None
    error_code: str | None


@dataclass(frozen=True)
class ProcessDefinition:
    process_id: str
    name: str | None
    elements: Mapping[str, Element]
    flows: Mapping[str, Flow]
    start_element_id: str
    errors: Mapping[str, ErrorDefinition]


def _as_bytes(xml: bytes | str) -> bytes:
    return xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)


def checksum(xml_bytes: bytes | str) -> str:
    """Identifies a model version: the same bytes always give the same checksum."""
    return hashlib.sha256(_as_bytes(xml_bytes)).hexdigest()


def _split(tag: object) -> tuple[str | None, str]:
    if not isinstance(tag, str):  # comments / processing instructions
        return None, ""
    ns, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return ns or None, local


def _invalid(problems: list[str]) -> BpmnError:
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return BpmnError("INVALID_BPMN", f"Invalid BPMN: {problems[0]}{more}", {"problems": problems})


def _load_xml(data: bytes) -> XmlElement:
    if len(data) > MAX_BPMN_BYTES:
        raise BpmnError("PAYLOAD_TOO_LARGE", f"BPMN document is {len(data)} bytes; the limit is "
                        f"{MAX_BPMN_BYTES} bytes", {"size": len(data), "limit": MAX_BPMN_BYTES})
    if not data.strip():
        raise _invalid(["the BPMN document is empty"])
    try:
        return SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException:
        raise _invalid(["DTDs, entity declarations and external references are not allowed"]) from None
    except SafeET.ParseError as exc:
        raise _invalid([f"malformed XML: {exc}"]) from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
        raise _invalid([f"unreadable XML: {exc}"]) from None


def _event_kinds(el: XmlElement) -> list[str]:
    return [local.removesuffix("EventDefinition") for ns, local in map(_split, (c.tag for c in el))
            if ns == BPMN_NS and local.endswith("EventDefinition")]


class _Builder:
    def __init__(self, root: XmlElement):
        self.root = root
        self.problems: list[str] = []
        self.bad = self.problems.append
        self.unsupported: dict[str, dict] = {}
        self.ids: set[str] = set()
        self.nodes: dict[str, dict] = {}  # id -> keyword arguments for Element
        self.flows: dict[str, Flow] = {}
        self.errors: dict[str, ErrorDefinition] = {}
        self.error_refs: dict[str, str | None] = {}  # boundary id -> errorRef (None: catch all)

    def refuse(self, el_id: str, el_type: str, reason: str) -> None:
        self.unsupported.setdefault(el_id, {"element_id": el_id, "element_type": el_type, "reason": reason})

    def build(self) -> ProcessDefinition:
        if _split(self.root.tag) != (BPMN_NS, "definitions"):
            raise _invalid(["the root element must be bpmn:definitions in the BPMN 2.0 model namespace"])
        top = [(_split(c.tag), c) for c in self.root]
        self.errors = {c.get("id"): ErrorDefinition(c.get("id"), c.get("name"), c.get("errorCode"))
                       for tag, c in top if tag == (BPMN_NS, "error") and c.get("id")}
        processes = [c for tag, c in top if tag == (BPMN_NS, "process") and c.get("isExecutable") == "true"]
        if len(processes) != 1:
            raise _invalid([f'exactly one executable process (isExecutable="true") is required, '
                            f"found {len(processes)}"])
        process = processes[0]
        if not process.get("id"):
            self.bad("the process has no id")
        for child in process:
            self.read_child(child)
        if self.unsupported:
            elements = list(self.unsupported.values())
            listed = ", ".join(f"{e['element_type']} '{e['element_id']}'" for e in elements)
            details = {"elements": elements, **({"problems": self.problems} if self.problems else {})}
            raise BpmnError("UNSUPPORTED_ELEMENT", f"The model uses unsupported BPMN elements: {listed}",
                            details)
        self.link()
        self.check()
        if self.problems:
            raise _invalid(self.problems)
        elements = {el_id: Element(**{k: tuple(v) if isinstance(v, list) else v for k, v in node.items()})
                    for el_id, node in self.nodes.items()}
        start_id = next(e.id for e in elements.values() if e.type == START)
        return ProcessDefinition(process.get("id"), process.get("name"), MappingProxyType(elements),
                                 MappingProxyType(self.flows), start_id, MappingProxyType(self.errors))

    def read_child(self, el: XmlElement) -> None:
        ns, tag = _split(el.tag)
        if ns != BPMN_NS or tag in IGNORED_PROCESS_CHILDREN:
            return
        el_id = el.get("id")
        if not el_id or el_id in self.ids:
            self.bad(f"duplicate id '{el_id}'" if el_id else f"a {tag} element has no id")
            return
        self.ids.add(el_id)
        kinds = _event_kinds(el)
        if tag == "sequenceFlow":
            self.read_flow(el, el_id)
        elif tag not in SUPPORTED_TYPES:
            self.refuse(el_id, tag, f"{' and '.join(kinds)} {tag} is not supported".lstrip())
        elif tag in (START, END) and kinds:
            self.refuse(el_id, tag, f"{' and '.join(kinds)} {tag} is not supported; only none events are")
        elif tag == BOUNDARY and el.get("cancelActivity", "true").strip() == "false":
            self.refuse(el_id, tag, "non-interrupting boundary events are not supported")
        elif tag == BOUNDARY and kinds and kinds != ["error"]:
            self.refuse(el_id, tag, f"{' and '.join(kinds)} boundary event is not supported; only error is")
        else:
            self.read_node(el, el_id, tag, kinds)

    def read_node(self, el: XmlElement, el_id: str, tag: str, kinds: list[str]) -> None:
        node = {"id": el_id, "type": tag, "name": el.get("name")}
        zeebe: dict[str, XmlElement] = {}
        for child in el:
            ns, local = _split(child.tag)
            if ns == BPMN_NS and local == "extensionElements":
                zeebe.update((_split(z.tag)[1], z) for z in child if _split(z.tag)[0] == ZEEBE_NS)
            elif ns != BPMN_NS or local in COMMON_CHILDREN or local.endswith("EventDefinition"):
                continue
            elif local.endswith("LoopCharacteristics"):
                self.refuse(el_id, tag, "multi-instance and loop activities are not supported")
            else:
                self.refuse(el_id, tag, f"<{local}> inside {tag} is not supported")
        for name in sorted(zeebe.keys() - ZEEBE_EXTENSIONS.get(tag, DEFAULT_ZEEBE_EXTENSIONS)):
            self.refuse(el_id, tag, f"zeebe:{name} is not supported")
        if tag == TASK:
            self.read_task(node, zeebe.get("taskDefinition"), zeebe.get("taskHeaders"))
        elif tag == XOR:
            node["default_flow"] = el.get("default")
        elif tag == BOUNDARY:
            node["attached_to"] = el.get("attachedToRef")
            if not kinds:
                self.bad(f"boundary event '{el_id}' has no event definition")
            else:
                self.error_refs[el_id] = el.find(f"{{{BPMN_NS}}}errorEventDefinition").get("errorRef") or None
        self.nodes[el_id] = node

    def read_task(self, node: dict, definition: XmlElement | None, header_list: XmlElement | None) -> None:
        el_id = node["id"]
        job_type = (definition.get("type") or "").strip() if definition is not None else ""
        if not job_type:
            self.bad(f"service task '{el_id}' has no job type (zeebe:taskDefinition type)")
        elif job_type.startswith("="):
            self.bad(f"service task '{el_id}': job type expressions are not supported")
        raw = (definition.get("retries") or "").strip() if definition is not None else ""
        retries = int(raw) if raw.isascii() and raw.isdigit() else DEFAULT_RETRIES if not raw else -1
        if not 1 <= retries <= MAX_RETRIES:
            self.bad(f"service task '{el_id}': retries must be a whole number from 1 to {MAX_RETRIES}, "
                     f"got '{raw}'")
        headers: dict[str, str] = {}
        for header in header_list.iterfind(f"{{{ZEEBE_NS}}}header") if header_list is not None else ():
            key = header.get("key")
            if not key or key in headers:
                self.bad(f"service task '{el_id}' has header '{key}' more than once" if key
                         else f"service task '{el_id}' has a header without a key")
            else:
                headers[key] = header.get("value") or ""
        node.update(job_type=job_type, retries=retries, headers=MappingProxyType(headers))

    def read_flow(self, el: XmlElement, el_id: str) -> None:
        condition, text = None, None
        cond_el = el.find(f"{{{BPMN_NS}}}conditionExpression")
        if cond_el is not None and (cond_el.text or "").strip():
            text = cond_el.text.strip()
            try:
                condition = feel.compile(text)
            except feel.FeelError as exc:
                self.bad(f"sequence flow '{el_id}' has an invalid condition {text!r}: {exc}")
        self.flows[el_id] = Flow(el_id, el.get("sourceRef") or "", el.get("targetRef") or "",
                                 condition, text, el.get("name"))

    def link(self) -> None:
        for node in self.nodes.values():
            node.update(outgoing=[], incoming=[], boundary_events=[])
        for flow in self.flows.values():
            ends = (("sourceRef", flow.source), ("targetRef", flow.target))
            missing = [f"{end} '{ref}'" for end, ref in ends if ref not in self.nodes]
            if missing:
                self.bad(f"sequence flow '{flow.id}' has {' and '.join(missing)} which is not a flow "
                         "element of the process")
            else:
                self.nodes[flow.source]["outgoing"].append(flow.id)
                self.nodes[flow.target]["incoming"].append(flow.id)
        for node in self.nodes.values():
            if node["type"] == BOUNDARY:
                task = self.nodes.get(node["attached_to"] or "")
                if task is None or task["type"] != TASK:
                    self.bad(f"boundary event '{node['id']}' must be attached to a service task "
                             f"(attachedToRef '{node['attached_to']}')")
                else:
                    task["boundary_events"].append(node["id"])

    def check(self) -> None:
        starts = [n["id"] for n in self.nodes.values() if n["type"] == START]
        if len(starts) != 1:
            self.bad(f"the process must have exactly one start event, found {len(starts)}")
        for node in self.nodes.values():
            el_id, kind, out = node["id"], node["type"], node["outgoing"]
            if kind in (START, BOUNDARY) and node["incoming"]:
                self.bad(f"{kind} '{el_id}' cannot have incoming sequence flows")
            if kind in (START, BOUNDARY, XOR, AND) and not out:
                self.bad(f"{kind} '{el_id}' has no outgoing sequence flow")
            if kind == END and out:
                self.bad(f"endEvent '{el_id}' cannot have outgoing sequence flows")
            for flow_id in out if kind != XOR else ():
                if self.flows[flow_id].condition_text is not None:
                    self.bad(f"sequence flow '{flow_id}' has a condition, which is only supported on "
                             "flows leaving an exclusive gateway")
            if kind == XOR:
                self.check_gateway(node)
            elif kind == BOUNDARY and el_id in self.error_refs:
                self.resolve_error(node)
        for node in self.nodes.values():
            # a boundary with a broken errorRef is already reported; do not also count it as catch-all
            codes = [self.nodes[b].get("error_code") for b in node["boundary_events"]
                     if "error_code" in self.nodes[b] or not self.error_refs.get(b)]
            for code in [c for c, n in Counter(codes).items() if n > 1]:
                what = f"error code '{code}'" if code is not None else "all error codes"
                self.bad(f"service task '{node['id']}' has more than one boundary event catching {what}")
        if len(starts) == 1:
            self.check_reachable(starts[0])

    def check_gateway(self, node: dict) -> None:
        el_id, default = node["id"], node.get("default_flow")
        if default is not None and default not in node["outgoing"]:
            self.bad(f"default flow '{default}' of gateway '{el_id}' is not one of its outgoing flows")
        elif default is not None and self.flows[default].condition_text is not None:
            self.bad(f"default flow '{default}' of gateway '{el_id}' must not have a condition")
        for flow_id in node["outgoing"] if len(node["outgoing"]) > 1 else ():
            if flow_id != default and self.flows[flow_id].condition_text is None:
                self.bad(f"sequence flow '{flow_id}' leaves gateway '{el_id}' without a condition "
                         "and is not its default flow")

    def resolve_error(self, node: dict) -> None:
        ref = self.error_refs[node["id"]]  # None: no errorRef, so it catches every error code
        error = self.errors.get(ref or "")
        code = ((error.error_code if error else None) or "").strip()
        if ref is None:
            return
        if error is None:
            self.bad(f"boundary event '{node['id']}' refers to error '{ref}' which is not defined")
        elif not code:
            self.bad(f"error '{ref}' used by boundary event '{node['id']}' has no errorCode")
        elif code.startswith("="):
            self.bad(f"error '{ref}': errorCode expressions are not supported")
        else:
            node["error_code"] = code

    def check_reachable(self, start_id: str) -> None:
        seen, queue = {start_id}, deque([start_id])
        while queue:
            node = self.nodes[queue.popleft()]
            for target in [self.flows[f].target for f in node["outgoing"]] + node["boundary_events"]:
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        for el_id in [n for n in self.nodes if n not in seen]:
            self.bad(f"element '{el_id}' cannot be reached from the start event")


def parse(xml_bytes: bytes | str) -> ProcessDefinition:
    """Parse and validate a model; raises BpmnError listing every problem found."""
    return _Builder(_load_xml(_as_bytes(xml_bytes))).build()


# --- navigation helpers for the engine ----------------------------------------

def next_flows_from(defn: ProcessDefinition, element_id: str, variables: dict) -> list[Flow]:
    element = defn.elements[element_id]
    flows = [defn.flows[f] for f in element.outgoing]
    if element.type != XOR:
        return flows
    for flow in flows:
        if flow.id == element.default_flow:
            continue
        if flow.condition is None or flow.condition.is_true(variables):
            return [flow]
    if element.default_flow is not None:
        return [defn.flows[element.default_flow]]
    raise NoPathError(element_id)


def incoming_count(defn: ProcessDefinition, element_id: str) -> int:
    return len(defn.elements[element_id].incoming)


def find_boundary_for_error(defn: ProcessDefinition, task_id: str, error_code: str | None) -> Element | None:
    catch_all = None
    for boundary_id in defn.elements[task_id].boundary_events:
        boundary = defn.elements[boundary_id]
        if boundary.error_code is None:
            catch_all = catch_all or boundary
        elif error_code is not None and boundary.error_code == error_code:
            return boundary
    return catch_all
