"""Request and response records of the Cohere (v1, v2), Jina (= Cohere v1) and TEI rerank shapes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class TextDocument(BaseModel):
    """A document given as an object (Cohere v1 / Jina allow ``{"text": ...}``); other keys are ignored."""

    model_config = ConfigDict(extra="allow")
    text: StrictStr


class RerankRequest(BaseModel):
    """Cohere v1/v2 and Jina: ``{model?, query, documents, top_n?, return_documents?, max_tokens_per_doc?}``."""

    model_config = ConfigDict(extra="ignore")
    model: StrictStr | None = None
    query: StrictStr
    documents: list[StrictStr | TextDocument]
    top_n: StrictInt | None = Field(None, ge=1)
    return_documents: StrictBool = False
    max_tokens_per_doc: StrictInt | None = Field(None, ge=1)

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class ResultDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: ResultDocument | None = None


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int = 1


class Meta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits = BilledUnits()


class RerankResponse(BaseModel):
    id: str
    results: list[RerankResult]
    meta: Meta


class TEIRequest(BaseModel):
    """Hugging Face text-embeddings-inference ``POST /rerank``."""

    model_config = ConfigDict(extra="ignore")
    query: StrictStr
    texts: list[StrictStr]
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncate: StrictBool | None = None
    model: StrictStr | None = None


class TEIResult(BaseModel):
    index: int
    score: float
    text: str | None = None


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    kind: str


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    errors: list | None = None
