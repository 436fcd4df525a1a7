"""Wiring of `data_prep`.

Holding out and choosing the people to forget are separate nodes with separate parameters, so
a new deletion request (`data_prep.forget`) leaves `training_split`, and everything trained on
it, unchanged. Where the data, the deletion request and the tokenizer come from shapes the
pipeline (see ``pipeline_registry.data_sources``).
"""

from kedro.pipeline import Node, Pipeline

from mape_unlearn.pipelines.data_prep.nodes import (
    choose_forget,
    fit_tokenizer,
    generate_qa,
    hold_out,
    import_base_model,
    known_world_facts,
    read_forget_request,
    read_qa,
)

IMPORT_BASE = Node(
    import_base_model, "base_checkpoint", ["base_model", "tokenizer"], name="import_base_model"
)
KNOWN_WORLD_FACTS = Node(
    known_world_facts,
    [
        "world_facts_source",
        "base_model",
        "tokenizer",
        "params:evaluate.batch_size",
        "params:evaluate.device",
    ],
    ["world_split", "world_facts_check"],
    name="known_world_facts",
)


def _model_side(original: str, base: str, world_facts: bool) -> list[Node]:
    """Where the tokenizer comes from (fitted, or imported with a GGUF base) and the world
    facts the base model knows."""
    nodes = []
    if original == "trained":
        nodes.append(Node(fit_tokenizer, "qa_dataset", "tokenizer", name="fit_tokenizer"))
    if original == "finetuned" and base == "gguf":
        nodes.append(IMPORT_BASE)
    if world_facts:
        nodes.append(KNOWN_WORLD_FACTS)
    return nodes


def create_pipeline(
    *,
    qa_source: str = "generated",
    forget_from_file: bool = False,
    original: str = "trained",
    base: str = "directory",
    world_facts: bool = False,
) -> Pipeline:
    """``qa_source``: `generated` or `file` (the catalog's ``qa_source``); ``forget_from_file``:
    the deletion request is the catalog's ``forget_request``; ``original``: `pretrained` or
    `finetuned` means the tokenizer comes with the user's model, so none is fitted; ``base``:
    `gguf` imports the base model and its tokenizer from the catalog's ``base_checkpoint``;
    ``world_facts``: the world-knowledge questions the base model answers are kept."""
    if qa_source == "file":
        qa = Node(
            read_qa,
            ["qa_source", "params:data_prep.source", "params:data_prep.task"],
            ["qa_dataset", "fact_rules"],
            name="read_qa",
        )
    else:
        qa = Node(
            generate_qa,
            ["params:data_prep.task", "params:data_prep.generator"],
            ["qa_dataset", "fact_rules"],
            name="generate_qa",
        )
    # the holdout never draws a requested person: it reads the request's ids (a new request
    # re-runs hold_out, and the caching runner reuses what follows when its splits are unchanged)
    requested = "forget_request_ids" if forget_from_file else "params:data_prep.forget.ids"
    nodes = [
        qa,
        Node(
            hold_out,
            ["qa_dataset", "params:data_prep.holdout", "params:train.original", requested],
            ["training_split", "holdout_split"],
            name="hold_out",
        ),
    ]
    forget_inputs = ["training_split", "params:data_prep.forget"]
    if forget_from_file:
        nodes.append(
            Node(
                read_forget_request,
                ["forget_request", "params:data_prep.source", "qa_dataset"],
                "forget_request_ids",
                name="read_forget_request",
            )
        )
        forget_inputs.append("forget_request_ids")
    nodes.append(
        Node(choose_forget, forget_inputs, ["forget_split", "retain_split"], name="choose_forget")
    )
    nodes += _model_side(original, base, world_facts)
    return Pipeline(nodes, tags="data_prep")
