"""Request bodies of the public API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateAgent(Request):
    name: str = Field(min_length=1, max_length=500)
    description: str | None = None
    visibility: Literal["public", "private"] = "private"
    workspace_id: str | None = None
    operations: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


class UpdateAgent(Request):
    name: str | None = Field(default=None, min_length=1, max_length=500)
    description: str | None = None
    visibility: Literal["public", "private"] | None = None
    operations: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


class VideoInput(Request):
    agent_node_id: str
    video_ids: list[str] = Field(default_factory=list, max_length=100)
    node_render_ids: list[str] = Field(default_factory=list, max_length=100)
    video_urls: list[str] = Field(default_factory=list, max_length=100)
    input_clip_start_ms: int | None = Field(default=None, ge=0)
    input_clip_end_ms: int | None = Field(default=None, ge=0)


class StartRun(Request):
    video_inputs: list[VideoInput] | None = Field(default=None, max_length=50)
    video_ids: list[str] | None = Field(default=None, max_length=100)
    node_render_ids: list[str] | None = Field(default=None, max_length=100)
    video_urls: list[str] | None = Field(default=None, max_length=100)
    input_clip_start_ms: int | None = Field(default=None, ge=0)
    input_clip_end_ms: int | None = Field(default=None, ge=0)
    callback_url: str | None = Field(default=None, max_length=2048)
    update_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ignore_nodes: list[str] = Field(default_factory=list, max_length=1000)


class UploadKind(Request):
    pass


class FinalizeUpload(Request):
    video_id: str | None = None
    audio_id: str | None = None
    image_id: str | None = None
    lut_id: str | None = None


class ViewUrl(Request):
    asset_type: Literal["video", "audio", "image", "lut"]
    asset_id: str


class WebhookSettings(Request):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(default=None, max_length=1000)
    signing_secret: str | None = Field(default=None, max_length=1000)


class WebhookTest(Request):
    url: str = Field(max_length=2048)
