"""The Data panel: session folder, data source, reader options, normalisation, label import.

Every action builds arguments from the form and calls one controller method;
a bad path, option or file is shown as a napari notification.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, PushButton, SpinBox

from ..core.config import AUTO, NORMALISATIONS, DataConfig, NormalisationConfig
from ..core.errors import AnomalyMatchError, ConfigError
from ..core.io.detect import DetectConfig, DetectProgress, saved_detection
from ..core.io.folders import propose_session_folder
from ..core.io.options import ReaderOption, format_patterns, option_fields, option_texts, parse_patterns
from ..core.io.registry import find_reader, reader_named, reader_names
from .compact import compact_combo_boxes, compact_file_edit, pack_to_top, status_label
from .detection import DetectOutcome
from .layers import layer_fits_file, layer_source, write_layer_stack
from .mosaic_layer import MosaicView, is_mosaic_session, open_mosaic_view
from .notifications import notify_errors

if TYPE_CHECKING:
    from .controller import AnomalyMatchController

FOLDER_READERS = ("folder", "zarr")
# form field -> the reader options it can fill (the HDF5 dataset and the Zarr array share one field)
FIELD_OPTIONS: dict[str, tuple[ReaderOption, ...]] = option_fields()


AUTO_CROP = 0.0  # the crop spin box's value for "auto" (a crop of nothing is not a setting)
DETECT_TEXT = "Detect sources"


class DataWidget(Container):
    """Choose or create a session and its source; preview and apply a normalisation."""

    def __init__(self, controller: AnomalyMatchController) -> None:
        super().__init__(labels=False)  # labelled fields in forms; buttons span the dock's width
        self.controller = controller
        self.session_dir = compact_file_edit(FileEdit(mode="d", label="Session folder"))
        self.reader = ComboBox(choices=["auto", *reader_names()], value="auto", label="Reader")
        self.source = compact_file_edit(FileEdit(mode="r", label="Source"))
        self.source.tooltip = ("a FITS/HDF5/Zarr file, a CSV/ECSV catalogue, a folder of images (set Reader to "
                               "'folder' to browse for one) or a glob such as /data/*.fits")
        self.option_fields = {field: option_field(options) for field, options in FIELD_OPTIONS.items()}
        for field, widget in self.option_fields.items():
            setattr(self, field, widget)  # data.hdu, data.array_name ...: the fields by the table's names
        self.from_layer = PushButton(text="Use the selected layer as source")
        self.detect_threshold = FloatSpinBox(value=DetectConfig.threshold, min=0.1, max=1000.0, step=0.5,
                                             label="Detection threshold (sigma)",
                                             tooltip="a source's pixels lie this many background sigmas above it")
        self.detect_min_area = SpinBox(value=DetectConfig.min_area, min=1, max=1_000_000,
                                       label="Smallest source (pixels)")
        self.detect_button = PushButton(text=DETECT_TEXT,
                                        tooltip="mosaic tiles without a catalogue: find the sources on the first "
                                                "band (sep) in the background, keep them in the session folder and "
                                                "make them the Source; then Open / create session cuts them")
        self.layer_as_mosaic = PushButton(text="Use the selected layer as a mosaic band",
                                          tooltip="add the FITS file the selected image layer was opened from to "
                                                  "Mosaic tiles (one band; select the next band's layer and add it)")
        self.show_mosaic = PushButton(text="Show candidates on the mosaic", enabled=False,
                                      tooltip="the session's first tile in a viewer of its own, the candidates on "
                                              "it as points: a click on one shows it in the review")
        self.mosaic_view: MosaicView | None = None  # the last one shown, closed when another is
        self.normalisation = ComboBox(choices=list(NORMALISATIONS), value="auto", label="Normalisation")
        self.low = FloatSpinBox(value=0.5, min=0.0, max=100.0, step=0.5, label="Low percentile")
        self.high = FloatSpinBox(value=99.5, min=0.0, max=100.0, step=0.5, label="High percentile")
        self.crop = FloatSpinBox(value=AUTO_CROP, min=AUTO_CROP, max=1.0, step=0.05, label="Central crop",
                                 tooltip="keep this fraction of each side (1: the whole image; auto: chosen "
                                         "from the images when the session is created)")
        self.crop.native.setSpecialValueText(AUTO)  # the spin box's lowest value reads, and means, "auto"
        self.apply_normalisation = PushButton(text="Apply normalisation to the session")
        self.load_button = PushButton(text="Open / create session")
        self.relocate_button = PushButton(text="Data moved: read the session's images from Source",
                                          tooltip="check that Source holds the session's images (the same "
                                                  "ids), then point the session at it (anomalymatch relocate)")
        self.labels_file = compact_file_edit(FileEdit(mode="r", filter="*.csv *.ecsv", label="Label file"))
        self.import_button = PushButton(text="Import labels")
        self.status = status_label("no session open")
        self.extend([form(self.session_dir, self.reader, self.source, *self.option_fields.values()),
                     self.from_layer, self.layer_as_mosaic, form(self.detect_threshold, self.detect_min_area),
                     self.detect_button,
                     form(self.normalisation, self.low, self.high, self.crop), self.apply_normalisation,
                     self.load_button, self.show_mosaic, self.relocate_button, form(self.labels_file),
                     self.import_button, self.status])
        compact_combo_boxes(self)
        pack_to_top(self)
        self.reader.changed.connect(self._on_reader_changed)
        self.source.changed.connect(lambda *_: self._sync_fields(clear=False))
        self.load_button.changed.connect(notify_errors(self._on_load))
        self.from_layer.changed.connect(notify_errors(self._on_from_layer))
        self.layer_as_mosaic.changed.connect(notify_errors(self._on_layer_as_mosaic))
        self.show_mosaic.changed.connect(notify_errors(self._on_show_mosaic))
        self.detect_button.changed.connect(notify_errors(self._on_detect))
        controller.detection.progress.connect(self._on_detection_progress)
        controller.detection.busy_changed.connect(self._on_detection_busy)
        controller.detection.finished.connect(self._on_detection_finished)
        self.import_button.changed.connect(notify_errors(self._on_import))
        self.relocate_button.changed.connect(notify_errors(self._on_relocate))
        self.apply_normalisation.changed.connect(notify_errors(self._on_apply_normalisation))
        for widget in (self.normalisation, self.low, self.high, self.crop):
            widget.changed.connect(notify_errors(self._on_normalisation_changed))
        controller.session_changed.connect(self._on_session_changed)
        controller.labels_changed.connect(self._show_status)
        controller.run_finished.connect(self._show_status)  # the cycle count moves on
        self._normalisation_edited = False  # by the user, since a session's was shown
        self._status_before_detection = ""

    # -- reading the form --------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """Reader options from the form (``hdu``, ``dataset`` or ``array``, ``ids``).

        Raises
        ------
        ConfigError
            Naming a filled field that the source's reader does not take.
        """
        reader = self._form_reader()
        accepted = reader.option_names() if reader is not None else None
        options: dict[str, Any] = {}
        for field, widget in self.option_fields.items():
            text = widget.value.strip()
            if not text:
                continue
            usable = [option for option in FIELD_OPTIONS[field] if accepted is None or option.name in accepted]
            if not usable:
                raise ConfigError(f"{widget.label} {text!r} does not apply to the {reader.name} reader (it takes "
                                  f"{sorted(accepted) or 'no options'}); clear that field")
            option = self._option_filled(usable)
            options[option.name] = option.parse(text)
        return options

    def _option_filled(self, usable: list[ReaderOption]) -> ReaderOption:
        """The option a field fills; ``dataset`` or ``array`` by the source when both may apply."""
        if len(usable) == 1:
            return usable[0]
        wanted = "array" if text_of(self.source).rstrip("/").endswith(".zarr") else "dataset"
        return next(option for option in usable if option.name == wanted)

    def _form_reader(self) -> Any:
        """The reader chosen, or the one the source calls for; None while that is unknown."""
        source = text_of(self.source)
        reader = reader_named(self.reader.value, {"mosaic": self.mosaic.value.strip()})
        if reader == "auto" and not source:
            return None
        try:
            return find_reader(source, reader)
        except AnomalyMatchError:
            return None  # a missing source: opening it says so

    def _sync_fields(self, clear: bool) -> None:
        """Enable only the fields the reader takes; with ``clear``, empty the others."""
        reader = self._form_reader()
        accepted = reader.option_names() if reader is not None else None
        for field, widget in self.option_fields.items():
            applies = accepted is None or any(option.name in accepted for option in FIELD_OPTIONS[field])
            widget.enabled = applies
            if clear and not applies:
                widget.value = ""

    def normalisation_config(self) -> NormalisationConfig:
        """The normalisation in the form (raises ConfigError naming a bad value)."""
        return NormalisationConfig(method=self.normalisation.value, low_percentile=float(self.low.value),
                                   high_percentile=float(self.high.value), crop=self._crop_setting())

    def _crop_setting(self) -> float | str:
        return AUTO if self.crop.value == AUTO_CROP else float(self.crop.value)

    # -- actions -----------------------------------------------------------------------

    def _on_load(self, *_: Any) -> None:
        session_dir = text_of(self.session_dir)
        if not session_dir:
            raise ConfigError("choose a session folder (an empty one creates a new session)")
        source = text_of(self.source) or None
        # A new session starts from the default normalisation, not from the one shown for the last session
        normalisation = self.normalisation_config() if self._normalisation_edited else None
        self.controller.load(session_dir, source=source, reader=self.reader.value, options=self.options(),
                             normalisation=normalisation)
        self._show_status()

    def _on_relocate(self, *_: Any) -> None:
        session_dir, source = text_of(self.session_dir), text_of(self.source)
        if not session_dir or not source:
            raise ConfigError("choose the moved session's folder and, as Source, where its images are now")
        moved = self.controller.relocate(session_dir, source)
        self._show_status()
        self.status.value = f"{self.status.value}; now reads {moved.n_images} images from {moved.new_source}"

    def _on_from_layer(self, *_: Any) -> None:
        layer = self.controller.viewer.layers.selection.active
        if layer is None:
            raise ConfigError("select an image layer first (e.g. one opened from a FITS/HDF5/Zarr file)")
        source = layer_source(layer)
        if source is None:
            source = self._write_layer_stack(layer)
        self.source.value = source["path"]
        self.reader.value = source.get("reader", "auto")
        self._show_options(source.get("options", {}))

    def _show_options(self, options: dict[str, Any]) -> None:
        for field, text in option_texts(options).items():
            self.option_fields[field].value = text

    def _on_layer_as_mosaic(self, *_: Any) -> None:
        layer = self.controller.viewer.layers.selection.active
        if layer is None:
            raise ConfigError("select the image layer of a FITS tile first (one opened from its file)")
        tile = layer_fits_file(layer)
        bands = parse_patterns(self.mosaic.value)
        self.reader.value = "mosaic"  # the Source is then the catalogue; other readers' fields are cleared
        if tile not in bands:
            self.mosaic.value = format_patterns([*bands, tile])

    def detect_config(self) -> DetectConfig:
        """The detection settings in the form."""
        return DetectConfig(threshold=float(self.detect_threshold.value), min_area=int(self.detect_min_area.value))

    def _on_detect(self, *_: Any) -> None:
        self._status_before_detection = self.status.value
        self.controller.detection.start(text_of(self.session_dir), parse_patterns(self.mosaic.value),
                                        self.detect_config())

    def _on_detection_busy(self, busy: bool) -> None:
        self.detect_button.enabled = self.load_button.enabled = not busy  # one detection; no session meanwhile
        self.detect_button.text = "Detecting sources..." if busy else DETECT_TEXT
        if busy:
            self.status.value = "detecting sources on the first band's tiles"

    def _on_detection_progress(self, progress: DetectProgress) -> None:
        self.status.value = progress.describe()

    def _on_detection_finished(self, outcome: DetectOutcome) -> None:
        if outcome.error is not None:
            from napari.utils.notifications import show_error

            self.status.value = self._status_before_detection
            show_error(outcome.error)
            return
        self.reader.value = "mosaic"  # the Source is the catalogue of positions to cut
        self.source.value = str(outcome.catalogue)
        self.status.value = (f"{outcome.found} sources found on {outcome.tiles} tile(s) of band 1, kept in "
                             f"{outcome.catalogue}; press Open / create session to cut them")

    def _on_show_mosaic(self, *_: Any) -> None:
        self._stop_mosaic_view()
        self.mosaic_view = open_mosaic_view(self.controller)

    def _stop_mosaic_view(self) -> None:
        """The last mosaic view no longer follows the review (its viewer keeps the tile until closed)."""
        if self.mosaic_view is not None:
            self.mosaic_view.close()
            self.mosaic_view = None

    def _write_layer_stack(self, layer: Any) -> dict[str, Any]:
        """Store a layer's image stack as HDF5 in the session folder."""
        folder = text_of(self.session_dir)
        if not folder:  # the README's order: the sample's layer first, then the session
            folder = str(propose_session_folder(layer.name))
            self.session_dir.value = folder
            from napari.utils.notifications import show_info

            show_info(f"the layer's images go to a new session folder, {folder}; choose another "
                      "before Open / create session if you like")
        return write_layer_stack(layer, folder)

    def _on_import(self, *_: Any) -> None:
        path = text_of(self.labels_file)
        if not path:
            raise ConfigError("choose a label file (CSV/ECSV with id or path, and label columns)")
        from napari.utils.notifications import show_info

        changing, replacing = self.controller.preview_import(path)
        if replacing and not confirm(self.native, "Import labels",
                                     f"{path} changes {changing} labels; {replacing} of them replace labels "
                                     "already given (the history keeps them: Undo brings them back). Import?"):
            return
        changed = self.controller.import_labels(path)
        replaced = f"; {replacing} replaced (Undo, z, brings them back)" if replacing else ""
        show_info(f"{changed} labels imported from {path}{replaced}")

    def _on_normalisation_changed(self, *_: Any) -> None:
        self._normalisation_edited = True
        if self.controller.session is None:
            return
        self.controller.preview_normalisation(self.normalisation_config())

    def _on_apply_normalisation(self, *_: Any) -> None:
        self.controller.apply_normalisation(self.normalisation_config())

    def _on_reader_changed(self, reader: str) -> None:
        self.source.mode = "d" if reader in FOLDER_READERS else "r"
        compact_file_edit(self.source)  # a new mode puts back the long button text
        self._sync_fields(clear=reader != "auto")

    # -- showing state -----------------------------------------------------------------

    def _on_session_changed(self, session: Any) -> None:
        if self.mosaic_view is not None and session is not self.mosaic_view.session:
            self._stop_mosaic_view()  # its points are another session's candidates
        self.show_mosaic.enabled = is_mosaic_session(session)
        if session is None:
            self.status.value = "no session open"
            return
        self.session_dir.value = str(session.path)
        self._show_data(session.config.data)
        norm = session.config.data.normalisation
        for widget, value in ((self.normalisation, norm.method), (self.low, norm.low_percentile),
                              (self.high, norm.high_percentile),
                              (self.crop, AUTO_CROP if norm.crop == AUTO else norm.crop)):
            with widget.changed.blocked():
                widget.value = value
        self._normalisation_edited = False
        self._show_status()

    def _show_data(self, data: DataConfig) -> None:
        """The session's source, reader, options and (sources it detected) detection settings, as saved:
        Open / create and Show candidates on the mosaic work again without choosing the files anew."""
        self.reader.value = reader_named(data.reader, data.options)  # first: it clears the fields others take
        self.source.value = data.source
        self._show_options(data.options)
        detection = saved_detection(data.source) or DetectConfig()  # a catalogue given: the defaults
        self.detect_threshold.value, self.detect_min_area.value = detection.threshold, detection.min_area

    def _show_status(self, *_: Any) -> None:
        session = self.controller.session
        if session is None:
            return
        try:
            collection = session.collection
        except AnomalyMatchError as err:
            self.status.value = str(err)
            return
        h, w, c = collection.shape
        counts = ", ".join(f"{n} {name}" for name, n in session.labels.counts().items())
        self.status.value = f"{len(collection)} images of {h}x{w}x{c}; cycle {session.cycle}; {counts}"


def form(*widgets: Any) -> Container:
    """Widgets in a labelled form (label column, then fields)."""
    return Container(widgets=list(widgets), labels=True)


def confirm(parent: Any, title: str, question: str) -> bool:
    """Ask a yes/no question in a dialog; True for yes."""
    from qtpy.QtWidgets import QMessageBox

    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent, title, question, buttons, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def text_of(file_edit: FileEdit) -> str:
    """What the user typed or chose in a FileEdit ('' when empty)."""
    return str(file_edit.line_edit.value).strip()


def option_field(options: tuple[ReaderOption, ...]) -> LineEdit:
    """The text field for reader ``options`` that share it, labelled and explained by the table."""
    return LineEdit(label=options[0].label, tooltip="; ".join(dict.fromkeys(option.help for option in options)))
