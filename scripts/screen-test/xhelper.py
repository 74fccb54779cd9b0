"""X11 helpers for the screen-share tests and bench (python-xlib, Pillow; run with the venv's
python from scripts/screen-test/python-tools).

  pattern DISPLAY LOG   cover the screen with a known picture and log the input it receives to LOG
                        ("press 1 100 200", "release 1 100 200", "text Hello!"); prints "ready"
  shot DISPLAY OUT.png  the X server's own screenshot of the root window
  same A.png B.png      exit 0 when both pictures have the same size and pixels, else print
                        how many pixels differ and exit 1
  clipboard DISPLAY     print the CLIPBOARD selection's text
  desktop DISPLAY       cover the screen with a desktop-like picture (windows, text-like runs,
                        icons) for the bench; prints "ready"
  resize DISPLAY W H    make the screen smaller through RandR (Xvfb allows up to its start size)
  scroll DISPLAY DY     move the test picture's window content up by DY pixels, as a scroll would
  vnccapture HOST::PORT OUT.png raw|zrle|hextile [PASSWORD]   vncdotool's capture, asking for one encoding
  cursor DISPLAY        print the X cursor's image (XFIXES) as JSON: width, height, xhot, yhot,
                        pixels (ARGB)
  set-cursor DISPLAY GLYPH   give the root and the top-level windows the cursor font's glyph
                        GLYPH (60: hand2); prints "ready" and keeps the cursor until its standard
                        input closes (the server forgets a cursor whose client left)
"""
import random
import sys
import time

from PIL import Image
from Xlib import X, Xatom, display as xdisplay


def picture(width, height):
    """BGRX bytes of the test picture: colour bars, a gradient, noise and a checkerboard."""
    rng = random.Random(42)
    rows = []
    bars = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255), (0, 0, 0)]
    for y in range(height):
        row = bytearray(width * 4)
        for x in range(width):
            if y < height // 4:
                r, g, b = bars[x * len(bars) // width]
            elif y < height // 2:
                r, g, b = x * 255 // max(1, width - 1), y * 255 // height, 128
            elif y < 3 * height // 4 and x < width // 2:
                r, g, b = rng.randrange(256), rng.randrange(256), rng.randrange(256)
            else:
                r, g, b = ((40, 40, 40) if (x // 16 + y // 16) % 2 else (220, 220, 220))
            row[x * 4:x * 4 + 4] = bytes((b, g, r, 0))
        rows.append(bytes(row))
    return rows


def pattern(name, log_path):
    d = xdisplay.Display(name)
    screen = d.screen()
    width, height = screen.width_in_pixels, screen.height_in_pixels
    window = screen.root.create_window(
        0, 0, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
        override_redirect=True, background_pixel=screen.black_pixel,
        event_mask=X.ExposureMask | X.KeyPressMask | X.KeyReleaseMask | X.ButtonPressMask
        | X.ButtonReleaseMask | X.PointerMotionMask)
    gc = window.create_gc()
    rows = picture(width, height)
    window.map()
    d.sync()
    log = open(log_path, "a", buffering=1)

    def paint():
        for top in range(0, height, 32):
            chunk = b"".join(rows[top:top + 32])
            window.put_image(gc, 0, top, width, min(32, height - top), X.ZPixmap, screen.root_depth, 0, chunk)
        d.sync()

    paint()
    window.set_input_focus(X.RevertToParent, X.CurrentTime)
    d.sync()
    print("ready", flush=True)
    while True:
        event = d.next_event()
        if event.type == X.Expose and event.count == 0:
            paint()
        elif event.type in (X.ButtonPress, X.ButtonRelease):
            kind = "press" if event.type == X.ButtonPress else "release"
            log.write(f"{kind} {event.detail} {event.event_x} {event.event_y}\n")
        elif event.type == X.MappingNotify:
            d.refresh_keyboard_mapping(event)  # a key was given a new symbol (a spare keycode)
        elif event.type == X.MotionNotify:
            log.write(f"motion {event.event_x} {event.event_y}\n")
        elif event.type == X.KeyPress:
            index = 1 if event.state & X.ShiftMask else 0
            keysym = d.keycode_to_keysym(event.detail, index) or d.keycode_to_keysym(event.detail, 0)
            if 32 <= keysym < 256:
                log.write(f"text {chr(keysym)}\n")
            else:
                log.write(f"key {keysym}\n")


def shot(name, out):
    d = xdisplay.Display(name)
    root = d.screen().root
    geometry = root.get_geometry()
    image = root.get_image(0, 0, geometry.width, geometry.height, X.ZPixmap, 0xffffffff)
    Image.frombytes("RGB", (geometry.width, geometry.height), image.data, "raw", "BGRX").save(out)


def same(first, second):
    a, b = Image.open(first).convert("RGB"), Image.open(second).convert("RGB")
    if a.size != b.size:
        print(f"sizes differ: {a.size} and {b.size}")
        return 1
    first_bytes, second_bytes = a.tobytes(), b.tobytes()
    if first_bytes != second_bytes:
        differing = sum(1 for i in range(0, len(first_bytes), 3) if first_bytes[i:i + 3] != second_bytes[i:i + 3])
        print(f"{differing} pixels differ")
        return 1
    return 0


def clipboard(name):
    d = xdisplay.Display(name)
    window = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
    selection, target = d.intern_atom("CLIPBOARD"), d.intern_atom("UTF8_STRING")
    prop = d.intern_atom("CX_CLIP")
    window.convert_selection(selection, target, prop, X.CurrentTime)
    deadline = time.time() + 5
    while time.time() < deadline:
        event = d.next_event()
        if event.type == X.SelectionNotify:
            if event.property == X.NONE:
                return 1
            data = window.get_full_property(prop, X.AnyPropertyType)
            sys.stdout.write(data.value.decode() if isinstance(data.value, bytes) else str(data.value))
            return 0
    return 1


def desktop(name):
    """A desktop as viewers usually see one: a plain background, windows with title bars and
    lines of text-like runs, a row of small gradient icons."""
    d = xdisplay.Display(name)
    screen = d.screen()
    width, height = screen.width_in_pixels, screen.height_in_pixels
    window = screen.root.create_window(0, 0, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
                                       override_redirect=True, background_pixel=0x2e3440)
    window.map()
    d.sync()
    rng = random.Random(7)
    colormap = screen.default_colormap

    def gc(pixel):
        return window.create_gc(foreground=pixel)

    for index, (x, y, w, h) in enumerate([(80, 60, 900, 600), (600, 300, 1000, 650), (1300, 80, 560, 420)]):
        window.fill_rectangle(gc(0x4c566a), x, y, w, 28)
        window.fill_rectangle(gc(0xeceff4), x, y + 28, w, h - 28)
        ink = gc(0x3b4252)
        for line in range(y + 44, y + h - 20, 18):
            cursor = x + 16
            while cursor < x + w - 80:
                word = rng.randrange(12, 70)
                window.fill_rectangle(ink, cursor, line, word, 9)
                cursor += word + rng.randrange(6, 12)
    for icon in range(12):
        for row in range(48):
            shade = (icon * 20 + row * 4) % 256
            window.fill_rectangle(gc(shade << 16 | (255 - shade) << 8 | 128), 40 + icon * 64, height - 80 + row, 48, 1)
    d.sync()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def resize(name, width, height):
    from Xlib.ext import randr
    d = xdisplay.Display(name)
    root = d.screen().root
    resources = randr.get_screen_resources(root)
    for crtc in resources.crtcs:
        randr.set_crtc_config(root, crtc, resources.config_timestamp, 0, 0, 0, randr.Rotate_0, [])
    randr.set_screen_size(root, int(width), int(height), int(width) // 4, int(height) // 4)
    d.sync()


def scroll(name, dy):
    d = xdisplay.Display(name)
    window = d.screen().root.query_tree().children[-1]
    geometry = window.get_geometry()
    dy = int(dy)
    window.copy_area(window.create_gc(), window, 0, dy, geometry.width, geometry.height - dy, 0, 0)
    d.sync()


def cursor(name):
    import json
    from Xlib.ext import xfixes  # noqa: F401 (registers the extension's methods)
    d = xdisplay.Display(name)
    d.xfixes_query_version()
    image = d.xfixes_get_cursor_image(d.screen().root)
    print(json.dumps({"width": image.width, "height": image.height, "xhot": image.xhot, "yhot": image.yhot,
                      "pixels": list(image.cursor_image)}))


def set_cursor(name, glyph):
    d = xdisplay.Display(name)
    font = d.open_font("cursor")
    shape = font.create_glyph_cursor(font, int(glyph), int(glyph) + 1, (0, 0, 0), (65535, 65535, 65535))
    root = d.screen().root
    for window in [root] + root.query_tree().children:
        window.change_attributes(cursor=shape)
    d.sync()
    print("ready", flush=True)
    sys.stdin.read()


def vnccapture(server, out, encoding, password=None):
    from vncdotool import api, client, rfb
    client.VNCDoToolClient.encoding = {"zrle": rfb.Encoding.ZRLE, "hextile": rfb.Encoding.HEXTILE}.get(
        encoding, rfb.Encoding.RAW)
    connection = api.connect(server, password=password, timeout=20)
    try:
        connection.captureScreen(out)
        connection.disconnect()
    finally:
        api.shutdown()


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    result = {"pattern": pattern, "shot": shot, "same": same, "clipboard": clipboard, "desktop": desktop, "scroll": scroll, "resize": resize,
              "vnccapture": vnccapture, "cursor": cursor, "set-cursor": set_cursor}[command](*arguments)
    sys.exit(result or 0)
