"""The Display panel: stretch, brightness, contrast, gamma, unsharp mask, channels, Lupton RGB.

These change what is drawn, never what the model sees.  Slider moves are
gathered for a moment (``DEBOUNCE_MS``) before the candidates are redrawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, FloatSpinBox, PushButton, SpinBox
from qtpy.QtCore import QTimer

from ..core.errors import AnomalyMatchError
from ..core.review.display import DISPLAY_STRETCHES, DisplaySettings
from .compact import compact_combo_boxes, pack_to_top, status_label

if TYPE_CHECKING:
    from .controller import AnomalyMatchController

DEBOUNCE_MS = 60


class DisplayWidget(Container):
    """Display-only adjustments for careful labelling."""

    def __init__(self, controller: AnomalyMatchController) -> None:
        super().__init__(labels=False)  # the form has labels; the button and message span the dock
        self.controller = controller
        d = DisplaySettings()
        self.stretch = ComboBox(choices=list(DISPLAY_STRETCHES), value=d.stretch, label="Stretch",
                                tooltip="'session': exactly what the model sees")
        self.brightness = FloatSlider(value=d.brightness, min=-1.0, max=1.0, step=0.01, label="Brightness")
        self.contrast = FloatSlider(value=d.contrast, min=0.1, max=5.0, step=0.05, label="Contrast")
        self.gamma = FloatSlider(value=d.gamma, min=0.1, max=4.0, step=0.05, label="Gamma")
        self.unsharp_amount = FloatSlider(value=d.unsharp_amount, min=0.0, max=5.0, step=0.1,
                                          label="Unsharp amount")
        self.unsharp_radius = FloatSlider(value=d.unsharp_radius, min=0.5, max=10.0, step=0.5,
                                          label="Unsharp radius (px)")
        self.channels = Container(layout="horizontal", labels=False, label="Channels")
        self.lupton = CheckBox(value=False, text="Lupton RGB composite (3 bands)")
        self.bands = [SpinBox(value=b, min=0, max=63, label=name)
                      for b, name in zip(d.lupton_bands, ("R band", "G band", "B band"), strict=True)]
        self.lupton_q = FloatSpinBox(value=d.lupton_q, min=0.1, max=100.0, step=0.5, label="Lupton Q")
        self.lupton_stretch = FloatSpinBox(value=d.lupton_stretch, min=0.01, max=100.0, step=0.05,
                                           label="Lupton stretch")
        self.reset = PushButton(text="Reset display")
        self.message = status_label()
        form = Container(labels=True)
        form.extend([self.stretch, self.brightness, self.contrast, self.gamma, self.unsharp_amount,
                     self.unsharp_radius, self.channels, self.lupton, *self.bands, self.lupton_q,
                     self.lupton_stretch])
        self.extend([form, self.reset, self.message])
        compact_combo_boxes(self)
        pack_to_top(self)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.apply)
        for widget in self._inputs():
            widget.changed.connect(self._schedule)
        self.reset.changed.connect(self._on_reset)
        controller.session_changed.connect(self._on_session_changed)
        controller.display_changed.connect(self._show_settings)

    def _inputs(self) -> list[Any]:
        return [self.stretch, self.brightness, self.contrast, self.gamma, self.unsharp_amount,
                self.unsharp_radius, self.lupton, *self.bands, self.lupton_q, self.lupton_stretch,
                *self.channels]

    def settings(self) -> DisplaySettings:
        """The settings in the form (raises ConfigError naming a bad value)."""
        return DisplaySettings(
            stretch=self.stretch.value, brightness=float(self.brightness.value),
            contrast=float(self.contrast.value), gamma=float(self.gamma.value),
            unsharp_amount=float(self.unsharp_amount.value), unsharp_radius=float(self.unsharp_radius.value),
            channels=tuple(bool(box.value) for box in self.channels), lupton=bool(self.lupton.value),
            lupton_bands=tuple(int(b.value) for b in self.bands), lupton_q=float(self.lupton_q.value),
            lupton_stretch=float(self.lupton_stretch.value))

    def _schedule(self, *_: Any) -> None:
        self._timer.start()

    def apply(self) -> None:
        """Redraw the candidates with the form's settings; a bad combination is explained here."""
        self._timer.stop()
        try:
            self.controller.set_display(self.settings())
        except AnomalyMatchError as err:
            self.message.value = str(err)
            return
        self.message.value = ""

    def _on_reset(self, *_: Any) -> None:
        defaults = DisplaySettings()
        for name in ("stretch", "brightness", "contrast", "gamma", "unsharp_amount", "unsharp_radius",
                     "lupton_q", "lupton_stretch"):
            getattr(self, name).value = getattr(defaults, name)
        self.lupton.value = False
        for box in self.channels:
            box.value = True
        self.apply()

    def _show_settings(self, settings: DisplaySettings) -> None:
        """Show settings made elsewhere (a script) without applying them again."""
        if settings == self.settings():
            return
        values = {name: getattr(settings, name) for name in (
            "stretch", "brightness", "contrast", "gamma", "unsharp_amount", "unsharp_radius", "lupton_q",
            "lupton_stretch", "lupton")}
        widgets = [getattr(self, name) for name in values] + list(self.bands) + list(self.channels)
        new = [*values.values(), *settings.lupton_bands, *(settings.channels or [True] * len(self.channels))]
        for widget, value in zip(widgets, new, strict=False):
            with widget.changed.blocked():
                widget.value = value
        self._timer.stop()

    def _on_session_changed(self, session: Any) -> None:
        """One switch per channel of the new session's images; Lupton only for 3+ bands.

        The form then shows the session's own display settings (restored by the controller).
        """
        if session is None:
            return
        n_channels = session.collection.shape[2]
        if len(self.channels) != n_channels:
            self.channels.clear()
            for channel in range(n_channels):
                box = CheckBox(value=True, text=str(channel))
                box.changed.connect(self._schedule)
                self.channels.append(box)
        self.channels.visible = n_channels > 1
        for widget in (self.lupton, *self.bands, self.lupton_q, self.lupton_stretch):
            widget.enabled = n_channels >= 3
        self._show_settings(self.controller.display)
