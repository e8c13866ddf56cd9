"""Real, varied texts for model tests: long and short, prose, code, markup, many scripts."""

_LONG_PROSE = (
    "The committee reviewed the quarterly figures, noting that revenue from the northern "
    "region had grown steadily while costs in logistics rose faster than forecast. "
) * 12
_LONG_CODE = "\n".join(
    f"def handler_{i}(event, context):\n    return {{'id': {i}}}" for i in range(60)
)

SAMPLE_TEXTS = [
    "hello world",
    "",
    "Milvus stores vectors and searches them by approximate nearest neighbour.",
    _LONG_PROSE,
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Maß und Fuß.",
    "東京は日本の首都であり、世界最大級の都市圏を形成している。",
    "Le café était fermé ; nous sommes allés à la crêperie d'à côté.",
    "🚀 Launch day! 🎉 Everything shipped on time 🙌",
    _LONG_CODE,
    "SELECT id, title FROM documents WHERE created_at > now() - interval '7 days';",
    "Σὲ γνωρίζω ἀπὸ τὴν κόψι τοῦ σπαθιοῦ τὴν τρομερή.",
    "مرحبا بكم في مكتبة المدينة، نفتح أبوابنا من التاسعة صباحا.",
    "A short one.",
    "Q: How do I reset my password?\nA: Open Settings, then Security, then Reset.",
    " ".join(f"token{i}" for i in range(400)),
    "Retries use exponential backoff with jitter; exhausted tasks go to a dead-letter queue.",
    "Привет, как дела? Всё хорошо, спасибо.",
    "# Heading\n\n- item one\n- item **two**\n\n> a quote with `code`",
    "ok",
    "The mitochondria is the powerhouse of the cell, producing ATP through respiration.",
]
