import pytest

from app.engine import feel
from app.engine.feel import FeelError

VARS = {
    "amount": 150,
    "price": 9.5,
    "name": "alice",
    "vip": True,
    "blocked": False,
    "nothing": None,
    "order": {"total": 250, "customer": {"country": "DE"}, "items": [1, 2]},
}


@pytest.mark.parametrize("expr, expected", [
    # literals
    ("42", 42), ("-7", -7), ("3.25", 3.25), (".5", 0.5), ('"hi there"', "hi there"),
    ("true", True), ("false", False), ("null", None),
    ('"say \\"hi\\"\\n"', 'say "hi"\n'),
    # paths
    ("amount", 150), ("order.total", 250), ("order.customer.country", "DE"),
    ("missing", None), ("order.missing.deeper", None), ("amount.total", None), ("order.items.x", None),
    # equality, FEEL style and C style
    ("amount = 150", True), ("amount == 150", True), ("amount = 150.0", True), ("amount != 150", False),
    ("amount != 151", True), ('name = "alice"', True), ('name != "bob"', True), ("vip = true", True),
    # ordering
    ("amount > 100", True), ("amount >= 150", True), ("amount < 150", False), ("amount <= 150", True),
    ("price < 10", True), ("price > 9.5", False), ("order.total > amount", True),
    # unary minus
    ("-amount", -150), ("-amount < 0", True), ("- -3", 3), ("-(-price)", 9.5), ("-(1) = -1", True),
    # logic
    ("vip and amount > 100", True), ("vip and blocked", False), ("blocked or vip", True),
    ("blocked or blocked", False), ("not(vip)", False), ("not blocked", True), ("not not vip", True),
    ("not(amount > 100) = false", True), ("(vip or blocked) and not blocked", True),
])
def test_evaluates(expr, expected):
    result = feel.evaluate(expr, VARS)
    assert result == expected and type(result) is type(expected)


def test_leading_equals_is_stripped_once():
    assert feel.evaluate("=amount > 100", VARS) is True
    assert feel.evaluate("  = amount > 100", VARS) is True
    with pytest.raises(FeelError):
        feel.compile("==amount")


def test_and_binds_tighter_than_or():
    # true or (false and false) -> true; (true or false) and false would be false
    assert feel.evaluate("true or false and false", {}) is True
    assert feel.evaluate("false and false or true", {}) is True
    assert feel.evaluate("(true or false) and false", {}) is False
    # comparison binds tighter than `not` and `and`
    assert feel.evaluate("not amount > 200 and amount > 100", VARS) is True


@pytest.mark.parametrize("expr, expected", [
    ("nothing = null", True), ("missing = null", True), ("amount = null", False),
    ("null != null", False), ("amount != null", True),
    ("nothing > 1", None), ("nothing < 1", None), ("1 <= null", None), ("null >= null", None),
    ('amount > "100"', None), ('"1" = 1', None), ("true = 1", None), ("true != 1", None),
    ("vip < true", None), ('name < 5', None), ("order > 1", None),
    ("-name", None), ("-vip", None), ("-nothing", None),
    # three-valued logic
    ("null and true", None), ("null and false", False), ("false and null", False),
    ("null or true", True), ("null or false", None), ("true or null", True),
    ("not(null)", None), ("not amount", None), ('"yes" and true', None), ("1 or false", None),
])
def test_null_semantics(expr, expected):
    assert feel.evaluate(expr, VARS) is expected


@pytest.mark.parametrize("expr, expected", [
    ('"apple" < "banana"', True), ('"b" > "abc"', True), ('"Z" < "a"', True),
    ('name >= "alice"', True), ('"" < "a"', True), ('name = "Alice"', False),
])
def test_string_comparisons(expr, expected):
    assert feel.evaluate(expr, VARS) is expected


def test_is_true_only_for_exact_true():
    assert feel.compile("amount > 100").is_true(VARS) is True
    for expr in ["amount", '"true"', "1", "null", "nothing > 1", "false", "order"]:
        assert feel.compile(expr).is_true(VARS) is False


def test_evaluate_tolerates_missing_or_odd_variables():
    assert feel.evaluate("amount > 1", {}) is None
    assert feel.evaluate("amount > 1", None) is None
    assert feel.evaluate("a.b = 1", {"a": [1, 2]}) is False  # null = 1
    assert feel.evaluate("a.b", {"a": [1, 2]}) is None


def test_compiled_expression_is_reusable_and_keeps_source():
    expr = feel.compile("=amount > 100")
    assert expr.source == "=amount > 100"
    assert expr.is_true({"amount": 101}) and not expr.is_true({"amount": 100})


@pytest.mark.parametrize("expr, position, fragment", [
    ("amount >", 8, "end of expression"),
    ("amount > > 1", 9, "unexpected '>'"),
    ("(amount > 1", 11, "')'"),
    ("amount > 1)", 10, "unexpected ')'"),
    ("1 < 2 < 3", 6, "chained"),
    ('"unterminated', 0, "unterminated string"),
    ('"bad \\q escape"', 5, "invalid escape"),
    ("amount # 1", 7, "unexpected character '#'"),
    ("'single'", 0, "unexpected character"),
    ("12abc", 0, "malformed number"),
    ("order.", 6, "a name after '.'"),
    ("order.5", 5, "unexpected '.5'"),
    ("a and", 5, "end of expression"),
    ("not", 3, "end of expression"),
    ("-not x", 5, "'(' after 'not'"),
    ("=", 1, "empty expression"),
    ("   ", 3, "empty expression"),
    ("= amount >", 10, "end of expression"),  # positions count from the original text
    ("amount ! 1", 7, "unexpected character '!'"),
    ("amount && vip", 7, "unexpected character '&'"),
    ("a + 1", 2, "unexpected character '+'"),
])
def test_syntax_errors_report_positions(expr, position, fragment):
    with pytest.raises(FeelError) as info:
        feel.compile(expr)
    assert info.value.position == position
    assert fragment in info.value.message
    assert f"at position {position}" in str(info.value)


@pytest.mark.parametrize("expr", [
    "__import__('os')",
    '__import__("os").system("id")',
    "open(\"/etc/passwd\")",
    '"".__class__',
    '"".__class__.__mro__',
    "().__class__",
    "amount[0]",
    "lambda: 1",
    "amount if vip else 0",
    "x := 1",
    "amount.__class__()",
    "f\"{amount}\"",
])
def test_python_tricks_are_plain_syntax_errors(expr):
    with pytest.raises(FeelError):
        feel.compile(expr)


def test_attribute_like_paths_only_read_dict_keys():
    # `a.__class__` is a valid path, but paths never touch Python attributes.
    assert feel.evaluate("amount.__class__", VARS) is None
    assert feel.evaluate("order.__class__ = null", VARS) is True
    assert feel.evaluate("d.keys", {"d": {"k": 1}}) is None


def test_length_cap():
    ok = "amount > 1" + " and amount > 1" * 130
    assert len(ok) <= feel.MAX_LENGTH
    assert feel.evaluate(ok, VARS) is True  # a long flat chain is fine (no deep recursion)
    with pytest.raises(FeelError, match="longer than"):
        feel.compile("1" + " " * feel.MAX_LENGTH)


def test_depth_cap():
    depth = feel.MAX_DEPTH - 1
    assert feel.evaluate("(" * depth + "1" + ")" * depth, {}) == 1
    too_deep = feel.MAX_DEPTH + 5
    with pytest.raises(FeelError, match="nested too deeply"):
        feel.compile("(" * too_deep + "1" + ")" * too_deep)
    with pytest.raises(FeelError, match="nested too deeply"):
        feel.compile("-" * 500 + "1")
    with pytest.raises(FeelError, match="nested too deeply"):
        feel.compile("not " * 400 + "true")
    with pytest.raises(FeelError, match="nested too deeply"):
        feel.compile("not(" * 300 + "true" + ")" * 300)


def test_non_string_is_rejected():
    with pytest.raises(FeelError):
        feel.compile(None)


def test_any_mapping_works_as_variables():
    from types import MappingProxyType
    variables = MappingProxyType({"order": MappingProxyType({"total": 5})})
    assert feel.evaluate("order.total = 5", variables) is True


def test_random_token_soup_only_ever_raises_feel_error():
    import random
    rng = random.Random(1234)
    vocab = ["amount", "order", ".", "total", "name", "(", ")", "not", "and", "or", "=", "==", "!=", "<", "<=",
             ">", ">=", "-", "1", "2.5", '"x"', "true", "false", "null", "nothing", "vip", "[", "'", "\\", '"']
    compiled = 0
    for _ in range(3000):
        expr = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9)))
        try:
            compiled_expr = feel.compile(expr)
        except FeelError:
            continue
        compiled += 1
        result = compiled_expr.evaluate(VARS)
        assert result is None or isinstance(result, (bool, int, float, str, dict, list))
    assert compiled > 100
