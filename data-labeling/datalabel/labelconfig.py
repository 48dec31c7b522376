"""Label configs: templates to build them, a parser to read them, checks before anything is sent to the server.

The order of labels in the config is the order of class ids everywhere (COCO category ids, YOLO class indexes,
ImageFolder class folders), so ids stay stable across exports of the same project.
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .errors import ConfigError, LabError, NotFound

# template name -> (control tag, object tag, data key, extra attributes of the control); a classification
# requires its choice (`required="true"`): the editor refuses an empty submission, which would count as labeled
TEMPLATES = {
    "image-classification": ("Choices", "Image", "image", ' choice="single" showInline="true" required="true"'),
    "object-detection": ("RectangleLabels", "Image", "image", ""),
    "polygon-segmentation": ("PolygonLabels", "Image", "image", ""),
    "keypoints": ("KeyPointLabels", "Image", "image", ""),
    "text-classification": ("Choices", "Text", "text", ' choice="single" required="true"'),
    "ner": ("Labels", "Text", "text", ""),
    "video-tracking": ("Labels", "Video", "video", ""),
}

CONTROL_TAGS = {
    "Choices", "Labels", "RectangleLabels", "PolygonLabels", "KeyPointLabels", "BrushLabels", "EllipseLabels",
    "Taxonomy", "TextArea", "Rating", "Number", "DateTime", "Ranker", "Pairwise", "Relations",
    "VideoRectangle", "Rectangle", "Polygon", "KeyPoint", "Brush", "Ellipse",
}
OBJECT_TAGS = {"Image", "Text", "Video", "Audio", "HyperText", "TimeSeries", "Table", "Paragraphs", "List"}
LABEL_CHILD = {"Choice", "Label"}


@dataclass(slots=True)
class Control:
    name: str
    tag: str
    to_name: str
    labels: list[str]


@dataclass(slots=True)
class LabelConfig:
    xml: str
    controls: list[Control]
    objects: dict[str, tuple[str, str]]  # object name -> (tag, data key)

    @property
    def labels(self) -> list[str]:
        """All class names in config order, without repeats (the class-id order)."""
        seen: dict[str, None] = {}
        for control in self.controls:
            for label in control.labels:
                seen.setdefault(label, None)
        return list(seen)

    @property
    def data_key(self) -> str | None:
        """The task data key of the first media object (`image`, `video`, ...)."""
        for tag, key in self.objects.values():
            if tag in ("Image", "Video", "Audio"):
                return key
        return next((key for _, key in self.objects.values()), None)

    @property
    def kind(self) -> str:
        tags = {c.tag for c in self.controls}
        if "Labels" in tags and any(t == "Video" for t, _ in self.objects.values()):
            return "video"
        for tag, kind in (("RectangleLabels", "rectangles"), ("PolygonLabels", "polygons"),
                          ("KeyPointLabels", "keypoints"), ("Labels", "spans"), ("Choices", "classification")):
            if tag in tags:
                return kind
        return "other"

    @property
    def digest(self) -> str:
        """A short hash of the config, stored in dataset manifests to tell configs apart."""
        return hashlib.sha256(" ".join(self.xml.split()).encode()).hexdigest()[:16]


def parse_labels(spec: str | list[str]) -> list[str]:
    """Labels from `a,b,c` (or a list); rejects empty and duplicated names."""
    items = spec if isinstance(spec, list) else spec.replace("\n", ",").split(",")
    labels = [item.strip() for item in items if item.strip()]
    if not labels:
        raise ConfigError("no labels given: pass --labels a,b,c or a file with one label per line")
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise LabError(f"duplicated label(s): {', '.join(dupes)}; each label must appear once")
    return labels


def build_config(template: str, labels: list[str]) -> str:
    """A label-config XML for one of TEMPLATES with the given labels."""
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r}; choose one of: {', '.join(TEMPLATES)}")
    labels = parse_labels(labels)
    control, obj, key, extra = TEMPLATES[template]
    child = "Choice" if control == "Choices" else "Label"
    items = "\n".join(f"    <{child} value={quoteattr(label)}/>" for label in labels)
    if template == "video-tracking":
        return (
            "<View>\n"
            f'  <Labels name="videoLabels" toName="{key}" allowEmpty="true">\n{items}\n  </Labels>\n'
            f'  <Video name="{key}" value="${key}" framerate="25.0"/>\n'
            f'  <VideoRectangle name="box" toName="{key}"/>\n'
            "</View>\n"
        )
    name = {"Choices": "choice", "Labels": "label"}.get(control, "label")
    return (
        "<View>\n"
        f'  <{obj} name="{key}" value="${key}"/>\n'
        f'  <{control} name="{name}" toName="{key}"{extra}>\n{items}\n  </{control}>\n'
        "</View>\n"
    )


def parse_config(xml: str) -> LabelConfig:
    """Parse and check a label config; raises LabError with the first problem found."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(f"invalid label config XML: {exc}") from None
    if root.tag != "View":
        raise ConfigError(f"invalid label config: the root tag must be <View>, not <{root.tag}>")
    objects: dict[str, tuple[str, str]] = {}
    controls: list[Control] = []
    for el in root.iter():
        if el.tag in OBJECT_TAGS:
            name, value = el.get("name"), el.get("value", "")
            if not name or not value.startswith("$"):
                raise ConfigError(f"invalid label config: <{el.tag}> needs name=\"...\" and value=\"$key\"")
            objects[name] = (el.tag, value[1:])
    for el in root.iter():
        if el.tag in CONTROL_TAGS:
            name, to_name = el.get("name"), el.get("toName")
            if not name or not to_name:
                raise ConfigError(f"invalid label config: <{el.tag}> needs name=\"...\" and toName=\"...\"")
            for target in to_name.split(","):
                if target not in objects:
                    raise ConfigError(f"invalid label config: <{el.tag} name=\"{name}\"> points to unknown toName={target!r}")
            labels = [c.get("value", "") for c in el if c.tag in LABEL_CHILD]
            if any(not label for label in labels):
                raise ConfigError(f"invalid label config: a label of <{el.tag} name=\"{name}\"> has no value")
            dupes = sorted({label for label in labels if labels.count(label) > 1})
            if dupes:
                raise ConfigError(f"invalid label config: duplicated label(s) {', '.join(dupes)} in {name!r}")
            controls.append(Control(name, el.tag, to_name, labels))
    if not objects:
        raise ConfigError("invalid label config: no data object (<Image>, <Text>, <Video>, ...) found")
    if not controls:
        raise ConfigError("invalid label config: no control tag (<Choices>, <RectangleLabels>, ...) found")
    return LabelConfig(xml=xml, controls=controls, objects=objects)


def read_config_file(path: str | Path) -> LabelConfig:
    """A label config from an XML file, checked like any other."""
    file = Path(path)
    if not file.is_file():
        raise NotFound(f"label config file not found: {path}")
    return parse_config(file.read_text(encoding="utf-8"))
