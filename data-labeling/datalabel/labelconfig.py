"""Label configs: templates to build them, a parser to read them, checks before anything is sent to the server.

The order of labels in the config is the order of class ids everywhere (COCO category ids, YOLO class indexes,
ImageFolder class folders), so ids stay stable across exports of the same project.
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from .errors import ConfigError
from .files import read_user_text

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
    # each label's attributes as written (`category` fixes a COCO id, `model_index` a keypoint's place)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)


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
            if tag in ("Image", "Video", "Audio") and key:
                return key
        return next((key for _, key in self.objects.values() if key), None)

    def target_key(self, tags, media=("Image", "Video")) -> str | None:
        """The data key of the object that the first control of one of `tags` labels (its toName), if that object
        is one of `media`: where the image of a box comes from, whatever other media the config shows first."""
        for control in self.controls:
            if control.tag in tags:
                for name in control.to_name.split(","):
                    tag, key = self.objects.get(name, ("", ""))
                    if tag in media and key:
                        return key
        return None

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
        raise ConfigError(f"duplicated label(s): {', '.join(dupes)}; each label must appear once")
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
    """Parse and check a label config; raises LabError with the first problem found.

    As Label Studio reads one: a control is any tag with name= and toName= (Choices, RectangleLabels, but also
    TimelineLabels, OcrLabels, a Chat that labels itself...), an object any other tag with name= and value= (or
    valueList=; data key `$key`, or static text), a label any <Label>/<Choice> under a control (its alias if it has
    one, which is what results store; repeats kept once). Only what Label Studio also refuses is an error: not XML,
    a root other than <View>, a toName that names no tag.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ConfigError(f"invalid label config XML: {exc}") from None
    if root.tag != "View":
        raise ConfigError(f"invalid label config: the root tag must be <View>, not <{root.tag}>")
    objects: dict[str, tuple[str, str]] = {}
    controls: list[Control] = []
    by_element: dict = {}
    names = set()
    parents = {child: parent for parent in root.iter() for child in parent}
    for el in root.iter():
        name = el.get("name")
        if not name or el.tag in LABEL_CHILD or el.tag == "Filter":
            continue
        names.add(name)
        value = el.get("value") or el.get("valueList") or ""
        if value and el.get("toName", name) == name:  # a Chat labels itself: an object and a control
            objects.setdefault(name, (el.tag, value[1:] if value.startswith("$") else ""))
        if el.get("toName"):
            by_element[el] = Control(name, el.tag, el.get("toName"), [])
            controls.append(by_element[el])
    for control in controls:
        for target in control.to_name.split(","):
            if target not in names and "{{" not in target:  # a Repeater's {{idx}} names are made at labeling time
                raise ConfigError(f"invalid label config: <{control.tag} name=\"{control.name}\"> points to unknown "
                                  f"toName={target!r}")
    for el in root.iter():
        if el.tag not in LABEL_CHILD:
            continue
        owner = parents.get(el)
        while owner is not None and owner not in by_element:
            owner = parents.get(owner)
        label = el.get("alias") or el.get("value")
        if owner is None or not label:
            continue
        control = by_element[owner]
        if label not in control.attrs:
            control.labels.append(label)
            control.attrs[label] = dict(el.attrib)
    return LabelConfig(xml=xml, controls=controls, objects=objects)


def read_config_file(path: str | Path) -> LabelConfig:
    """A label config from an XML file, checked like any other."""
    return parse_config(read_user_text(path, "label config file"))
