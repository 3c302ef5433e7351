import dataclasses
from pathlib import Path

import pytest

from app.engine import bpmn
from app.engine.bpmn import BpmnError, NoPathError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bpmn"

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">'
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def model(body: str, after: str = "", process: str = 'id="p" isExecutable="true"') -> bytes:
    return f"{HEAD}<bpmn:process {process}>{body}</bpmn:process>{after}</bpmn:definitions>".encode()


def start(el_id="s"):
    return f'<bpmn:startEvent id="{el_id}" />'


def end(el_id="e"):
    return f'<bpmn:endEvent id="{el_id}" />'


def task(el_id, job_type="work", extra=""):
    return (f'<bpmn:serviceTask id="{el_id}"><bpmn:extensionElements>'
            f'<zeebe:taskDefinition type="{job_type}" /></bpmn:extensionElements>{extra}</bpmn:serviceTask>')


def flow(el_id, source, target, condition=None):
    cond = ("" if condition is None else
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>')
    return f'<bpmn:sequenceFlow id="{el_id}" sourceRef="{source}" targetRef="{target}">{cond}</bpmn:sequenceFlow>'


def straight(*middle: str) -> str:
    """start -> each given task id -> end, wired in order."""
    ids = ["s", *middle, "e"]
    parts = [start(), end(), *(task(m) for m in middle)]
    parts += [flow(f"f{i}", a, b) for i, (a, b) in enumerate(zip(ids, ids[1:]))]
    return "".join(parts)


def refused(xml: bytes, code: str) -> BpmnError:
    with pytest.raises(BpmnError) as info:
        bpmn.parse(xml)
    assert info.value.code == code, info.value.details
    return info.value


def problems(xml: bytes) -> list[str]:
    return refused(xml, "INVALID_BPMN").details["problems"]


# --- fixtures from Camunda Modeler ------------------------------------------------

def test_one_task_fixture():
    defn = bpmn.parse(fixture("one-task.bpmn"))
    assert (defn.process_id, defn.name) == ("welcome-email", "Welcome email")
    assert defn.start_element_id == "StartEvent_1"
    assert list(defn.elements) == ["StartEvent_1", "Activity_1wz7g0e", "Event_0c5v9hy"]
    task_el = defn.elements["Activity_1wz7g0e"]
    assert (task_el.type, task_el.name, task_el.job_type, task_el.retries) == (
        "serviceTask", "Send welcome email", "email-service", 5)
    assert list(task_el.headers.items()) == [
        ("priority", "high"), ("template", "welcome-v2"), ("locale", "en-GB")]
    assert (task_el.incoming, task_el.outgoing) == (("Flow_0ls1q3d",), ("Flow_1b8m4xq",))
    assert defn.flows["Flow_0ls1q3d"].source == "StartEvent_1"
    assert defn.flows["Flow_0ls1q3d"].target == "Activity_1wz7g0e"
    assert defn.flows["Flow_0ls1q3d"].condition is None
    assert defn.elements["Event_0c5v9hy"].type == "endEvent"


def test_order_fixture():
    defn = bpmn.parse(fixture("order.bpmn"))
    els = defn.elements
    assert defn.process_id == "order-fulfilment"
    jobs = {e.id: (e.job_type, e.retries) for e in els.values() if e.type == "serviceTask"}
    assert jobs == {
        "Task_Payment": ("payment-processor", 2), "Task_ManualReview": ("manual-review", 3),
        "Task_Email": ("email-service", 3), "Task_Stock": ("inventory-checker", 4),
        "Task_NotifyDecline": ("notify-decline", 3),
    }
    assert els["Task_Email"].headers == {"template": "order-confirmation"}
    assert els["Gateway_Amount"].type == "exclusiveGateway"
    assert els["Gateway_Amount"].default_flow == "Flow_Normal"
    assert els["Gateway_Amount"].outgoing == ("Flow_Large", "Flow_Normal")
    large = defn.flows["Flow_Large"]
    assert large.condition_text == "=amount > 100" and large.name == "amount > 100"
    assert large.condition.is_true({"amount": 101})
    boundary = els["Boundary_Declined"]
    assert (boundary.type, boundary.attached_to, boundary.error_code) == (
        "boundaryEvent", "Task_Payment", "PAYMENT_DECLINED")
    assert els["Task_Payment"].boundary_events == ("Boundary_Declined",)
    assert defn.errors["Error_PaymentDeclined"].error_code == "PAYMENT_DECLINED"
    assert els["Gateway_Fork"].type == els["Gateway_Join"].type == "parallelGateway"
    assert bpmn.incoming_count(defn, "Gateway_Join") == 2
    assert bpmn.incoming_count(defn, "Gateway_Fork") == 1


def test_unsupported_fixture_lists_every_unsupported_element():
    err = refused(fixture("unsupported.bpmn"), "UNSUPPORTED_ELEMENT")
    found = [(e["element_id"], e["element_type"]) for e in err.details["elements"]]
    assert found == [("Activity_Approve", "userTask"), ("Event_WaitPayday", "intermediateCatchEvent")]
    assert "timer" in err.details["elements"][1]["reason"]
    assert "Activity_Approve" in err.message and "Event_WaitPayday" in err.message


def test_model_is_immutable():
    defn = bpmn.parse(fixture("order.bpmn"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        defn.elements["Task_Payment"].job_type = "other"
    with pytest.raises(TypeError):
        defn.elements["x"] = None
    with pytest.raises(TypeError):
        defn.elements["Task_Email"].headers["template"] = "x"
    with pytest.raises(TypeError):
        defn.flows["x"] = None


def test_checksum_is_sha256_of_the_raw_bytes():
    raw = fixture("one-task.bpmn")
    assert bpmn.checksum(raw) == bpmn.checksum(bytes(raw))
    assert len(bpmn.checksum(raw)) == 64
    assert bpmn.checksum(raw) != bpmn.checksum(raw + b"\n")
    assert bpmn.checksum(raw.decode()) == bpmn.checksum(raw)


def test_text_input_is_accepted():
    assert bpmn.parse(fixture("one-task.bpmn").decode()).process_id == "welcome-email"


# --- unsupported elements -----------------------------------------------------------

@pytest.mark.parametrize("element, el_type", [
    ('<bpmn:subProcess id="x" />', "subProcess"),
    ('<bpmn:scriptTask id="x" />', "scriptTask"),
    ('<bpmn:inclusiveGateway id="x" />', "inclusiveGateway"),
    ('<bpmn:intermediateThrowEvent id="x"><bpmn:messageEventDefinition /></bpmn:intermediateThrowEvent>',
     "intermediateThrowEvent"),
    ('<bpmn:endEvent id="x"><bpmn:terminateEventDefinition /></bpmn:endEvent>', "endEvent"),
    ('<bpmn:endEvent id="x"><bpmn:errorEventDefinition /></bpmn:endEvent>', "endEvent"),
    ('<bpmn:boundaryEvent id="x" attachedToRef="t" cancelActivity="false"><bpmn:errorEventDefinition />'
     '</bpmn:boundaryEvent>', "boundaryEvent"),
    ('<bpmn:boundaryEvent id="x" attachedToRef="t"><bpmn:timerEventDefinition /></bpmn:boundaryEvent>',
     "boundaryEvent"),
    (task("x", extra='<bpmn:multiInstanceLoopCharacteristics />'), "serviceTask"),
    (task("x").replace("</bpmn:extensionElements>", "<zeebe:ioMapping /></bpmn:extensionElements>"),
     "serviceTask"),
])
def test_unsupported_elements(element, el_type):
    err = refused(model(straight("t") + element), "UNSUPPORTED_ELEMENT")
    assert err.details["elements"][0]["element_id"] == "x"
    assert err.details["elements"][0]["element_type"] == el_type


def test_timer_start_event_is_unsupported():
    body = straight("t").replace(start(), '<bpmn:startEvent id="s"><bpmn:timerEventDefinition />'
                                          '</bpmn:startEvent>')
    err = refused(model(body), "UNSUPPORTED_ELEMENT")
    assert err.details["elements"] == [
        {"element_id": "s", "element_type": "startEvent", "reason": err.details["elements"][0]["reason"]}]
    assert "timer" in err.details["elements"][0]["reason"]


def test_descriptive_elements_and_foreign_extensions_are_ignored():
    extras = (
        '<bpmn:laneSet id="ls"><bpmn:lane id="lane1"><bpmn:flowNodeRef>t</bpmn:flowNodeRef></bpmn:lane>'
        '</bpmn:laneSet><bpmn:textAnnotation id="ta"><bpmn:text>note</bpmn:text></bpmn:textAnnotation>'
        '<bpmn:association id="as" sourceRef="t" targetRef="ta" />'
    )
    body = straight("t").replace(
        "</bpmn:extensionElements>",
        '<zeebe:properties><zeebe:property name="a" value="b" /></zeebe:properties>'
        '<other:thing xmlns:other="urn:other" /></bpmn:extensionElements>') + extras
    defn = bpmn.parse(model(body))
    assert set(defn.elements) == {"s", "t", "e"}


# --- hostile and malformed input ---------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <bpmn:process id="p" name="&lol4;" isExecutable="true" />
</bpmn:definitions>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">
  <bpmn:process id="p" name="&xxe;" isExecutable="true" />
</bpmn:definitions>"""

EXTERNAL_DTD = (b'<?xml version="1.0"?>\n<!DOCTYPE definitions SYSTEM "http://example.com/evil.dtd">\n'
                + model(straight("t")).split(b"\n", 1)[1])


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_dtds_and_entities_are_refused(xml):
    assert "DTDs" in problems(xml)[0]


def test_oversize_is_refused_before_parsing():
    xml = model(straight("t"))
    padded = xml + b"<!--" + b"x" * (bpmn.MAX_BPMN_BYTES - len(xml) - 7) + b"-->"
    assert len(padded) == bpmn.MAX_BPMN_BYTES
    assert bpmn.parse(padded).process_id == "p"  # exactly at the limit is fine
    err = refused(padded + b" ", "PAYLOAD_TOO_LARGE")
    assert err.details == {"size": bpmn.MAX_BPMN_BYTES + 1, "limit": bpmn.MAX_BPMN_BYTES}


@pytest.mark.parametrize("xml, fragment", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"<bpmn:definitions", "malformed XML"),
    (model(straight("t")).replace(b"</bpmn:process>", b""), "malformed XML"),
    (b"<definitions><process id='p' isExecutable='true'/></definitions>", "bpmn:definitions"),
    (b"not xml at all", "malformed XML"),
    (model(straight("t"), process='id="p" isExecutable="false"'), "found 0"),
    (model(straight("t"), after='<bpmn:process id="q" isExecutable="true" />'), "found 2"),
])
def test_malformed_documents(xml, fragment):
    found = problems(xml)
    assert len(found) == 1 and fragment in found[0]


def test_non_executable_processes_are_ignored_when_one_is_executable():
    xml = model(straight("t"), after='<bpmn:process id="other" isExecutable="false" />')
    assert bpmn.parse(xml).process_id == "p"


# --- validation collects every problem ---------------------------------------------

def test_all_problems_are_collected():
    body = (
        start() + end()
        + '<bpmn:serviceTask id="no_type" />'
        + task("a") + '<bpmn:exclusiveGateway id="gw" />' + '<bpmn:parallelGateway id="fork" />'
        + task("orphan")
        + flow("f1", "s", "no_type") + flow("f2", "no_type", "a") + flow("f3", "a", "gw")
        + flow("f4", "a", "ghost") + flow("f5", "orphan", "e")
        + flow("f6", "fork", "e", condition="=amount >")
    )
    found = problems(model(body))
    joined = "\n".join(found)
    assert "service task 'no_type' has no job type" in joined
    assert "targetRef 'ghost'" in joined
    assert "exclusiveGateway 'gw' has no outgoing sequence flow" in joined
    assert "sequence flow 'f6' has an invalid condition '=amount >'" in joined
    assert "at position 9" in joined  # the FEEL error is included
    assert "element 'orphan' cannot be reached" in joined
    assert "element 'fork' cannot be reached" in joined
    assert len(found) >= 6


@pytest.mark.parametrize("body, fragment", [
    (end() + task("t") + flow("f", "t", "e"), "exactly one start event, found 0"),
    (start("s1") + start("s2") + end() + flow("f1", "s1", "e") + flow("f2", "s2", "e"),
     "exactly one start event, found 2"),
    (start() + end() + flow("f", "s", "e") + flow("g", "e", "s"), "cannot have incoming"),
    (start() + end() + flow("f", "s", "e") + end("e2") + flow("g", "e", "e2"), "endEvent 'e' cannot have outgoing"),
    (start() + end(), "startEvent 's' has no outgoing"),
    (straight("t") + task("t"), "duplicate id 't'"),
    (straight("t") + '<bpmn:endEvent />', "has no id"),
    (straight("t").replace('type="work"', 'type="  "'), "has no job type"),
    (straight("t").replace('type="work"', 'type="=jobType"'), "job type expressions"),
    (straight("t").replace('type="work"', 'type="work" retries="0"'), "retries"),
    (straight("t").replace('type="work"', 'type="work" retries="many"'), "retries"),
    (straight("t").replace("</bpmn:extensionElements>",
                           '<zeebe:taskHeaders><zeebe:header key="k" value="1" /><zeebe:header key="k" value="2" />'
                           '</zeebe:taskHeaders></bpmn:extensionElements>'), "header 'k' more than once"),
    (straight("t").replace('<bpmn:sequenceFlow id="f1" sourceRef="t" targetRef="e">',
                           '<bpmn:sequenceFlow id="f1" sourceRef="t" targetRef="e"><bpmn:conditionExpression>'
                           '=x &gt; 1</bpmn:conditionExpression>'),
     "only supported on flows leaving an exclusive gateway"),
    (straight("t") + '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:errorEventDefinition errorRef="nope" />'
     '</bpmn:boundaryEvent>' + flow("fb", "b", "e"), "error 'nope' which is not defined"),
    (straight("t") + '<bpmn:boundaryEvent id="b" attachedToRef="e"><bpmn:errorEventDefinition />'
     '</bpmn:boundaryEvent>' + flow("fb", "b", "e"), "must be attached to a service task"),
    (straight("t") + '<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:errorEventDefinition />'
     '</bpmn:boundaryEvent>', "boundaryEvent 'b' has no outgoing"),
    (straight("t") + '<bpmn:boundaryEvent id="b" attachedToRef="t" />' + flow("fb", "b", "e"),
     "has no event definition"),
    (straight("t") + '<bpmn:boundaryEvent id="b1" attachedToRef="t"><bpmn:errorEventDefinition />'
     '</bpmn:boundaryEvent><bpmn:boundaryEvent id="b2" attachedToRef="t"><bpmn:errorEventDefinition />'
     '</bpmn:boundaryEvent>' + flow("fb1", "b1", "e") + flow("fb2", "b2", "e"), "catching all error codes"),
])
def test_structural_problems(body, fragment):
    joined = "\n".join(problems(model(body)))
    assert fragment in joined


def test_error_without_code_is_a_problem():
    body = straight("t") + ('<bpmn:boundaryEvent id="b" attachedToRef="t"><bpmn:errorEventDefinition '
                            'errorRef="Err" /></bpmn:boundaryEvent>') + flow("fb", "b", "e")
    assert "has no errorCode" in problems(model(body, after='<bpmn:error id="Err" name="x" />'))[0]


def gateway_model(default: str | None = "f_default", conditions=("=amount > 100", "=amount > 50")) -> bytes:
    default_attr = f' default="{default}"' if default else ""
    body = (start() + f'<bpmn:exclusiveGateway id="gw"{default_attr} />' + flow("f0", "s", "gw")
            + task("big") + task("medium") + end()
            + flow("f_big", "gw", "big", conditions[0]) + flow("f_medium", "gw", "medium", conditions[1])
            + (flow("f_default", "gw", "e") if default else "")
            + flow("f1", "big", "e") + flow("f2", "medium", "e"))
    return model(body)


@pytest.mark.parametrize("body, fragment", [
    (gateway_model(default="f_big"), "must not have a condition"),
    (gateway_model(default="f1"), "is not one of its outgoing flows"),
    (gateway_model(conditions=("=amount > 100", None)), "'f_medium' leaves gateway 'gw' without a condition"),
])
def test_gateway_problems(body, fragment):
    assert fragment in "\n".join(problems(body))


# --- navigation -------------------------------------------------------------------

def flow_ids(flows):
    return [f.id for f in flows]


def test_gateway_routing_with_default_flow():
    defn = bpmn.parse(fixture("order.bpmn"))
    assert flow_ids(bpmn.next_flows_from(defn, "Gateway_Amount", {"amount": 150})) == ["Flow_Large"]
    assert flow_ids(bpmn.next_flows_from(defn, "Gateway_Amount", {"amount": 100})) == ["Flow_Normal"]
    assert flow_ids(bpmn.next_flows_from(defn, "Gateway_Amount", {})) == ["Flow_Normal"]  # null > 100 is null
    assert flow_ids(bpmn.next_flows_from(defn, "Gateway_Amount", {"amount": "150"})) == ["Flow_Normal"]


def test_first_true_condition_in_document_order_wins():
    defn = bpmn.parse(gateway_model())
    assert flow_ids(bpmn.next_flows_from(defn, "gw", {"amount": 500})) == ["f_big"]
    assert flow_ids(bpmn.next_flows_from(defn, "gw", {"amount": 70})) == ["f_medium"]
    assert flow_ids(bpmn.next_flows_from(defn, "gw", {"amount": 1})) == ["f_default"]


def test_no_path_error_without_default():
    defn = bpmn.parse(gateway_model(default=None))
    assert flow_ids(bpmn.next_flows_from(defn, "gw", {"amount": 70})) == ["f_medium"]
    with pytest.raises(NoPathError) as info:
        bpmn.next_flows_from(defn, "gw", {"amount": 1})
    assert info.value.element_id == "gw"


def test_single_unconditioned_flow_out_of_a_gateway_is_taken():
    body = (start() + '<bpmn:exclusiveGateway id="gw" />' + end()
            + flow("f0", "s", "gw") + flow("f1", "gw", "e"))
    assert flow_ids(bpmn.next_flows_from(bpmn.parse(model(body)), "gw", {})) == ["f1"]


def test_non_gateway_elements_follow_every_outgoing_flow():
    defn = bpmn.parse(fixture("order.bpmn"))
    assert flow_ids(bpmn.next_flows_from(defn, "Gateway_Fork", {})) == ["Flow_ToEmail", "Flow_ToStock"]
    assert flow_ids(bpmn.next_flows_from(defn, "StartEvent_1", {})) == ["Flow_0f1y2ze"]
    assert flow_ids(bpmn.next_flows_from(defn, "Task_Stock", {})) == ["Flow_StockDone"]
    assert flow_ids(bpmn.next_flows_from(defn, "Boundary_Declined", {})) == ["Flow_Declined"]
    assert bpmn.next_flows_from(defn, "End_Done", {}) == []


def test_error_boundary_lookup():
    defn = bpmn.parse(fixture("order.bpmn"))
    assert bpmn.find_boundary_for_error(defn, "Task_Payment", "PAYMENT_DECLINED").id == "Boundary_Declined"
    assert bpmn.find_boundary_for_error(defn, "Task_Payment", "OTHER") is None
    assert bpmn.find_boundary_for_error(defn, "Task_Payment", None) is None
    assert bpmn.find_boundary_for_error(defn, "Task_Email", "PAYMENT_DECLINED") is None


def test_exact_error_code_is_preferred_over_catch_all():
    boundaries = (
        '<bpmn:boundaryEvent id="b_any" attachedToRef="t"><bpmn:errorEventDefinition id="d1" />'
        '</bpmn:boundaryEvent>'
        '<bpmn:boundaryEvent id="b_exact" attachedToRef="t"><bpmn:errorEventDefinition id="d2" errorRef="E" />'
        '</bpmn:boundaryEvent>'
    )
    body = straight("t") + boundaries + flow("fa", "b_any", "e") + flow("fx", "b_exact", "e")
    defn = bpmn.parse(model(body, after='<bpmn:error id="E" name="Out of stock" errorCode="OUT_OF_STOCK" />'))
    assert defn.elements["b_any"].error_code is None
    assert defn.elements["t"].boundary_events == ("b_any", "b_exact")
    assert bpmn.find_boundary_for_error(defn, "t", "OUT_OF_STOCK").id == "b_exact"
    assert bpmn.find_boundary_for_error(defn, "t", "ANYTHING").id == "b_any"
    assert bpmn.find_boundary_for_error(defn, "t", None).id == "b_any"
