"""Offline loaders, answer parsers and scorers for published hallucination benchmarks: POPE, CHAIR, AMBER.

Each module reads the benchmark's own files and follows its reference scorer; none runs a model. They share one
shape, so that a runner can drive them alike:

    questions = pope.load_questions(...)          # [{"id", "image", "question", ...}, ...]
    answers = {q["id"]: generate(q["image"], q["question"]) for q in questions}
    metrics = pope.score(questions, answers)      # flat {name: float | int}
"""
