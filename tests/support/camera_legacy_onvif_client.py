"""Interop probe run by the LEGACY ``onvif-zeep`` client in its own venv (not by pytest).

The project uses onvif-zeep-async; this older, independently written client installs the
same ``onvif`` module name, hence a separate interpreter. Prints one JSON object of what it
could read from the camera; the test compares it with what the simulator was set up with.
Usage: python camera_legacy_onvif_client.py HOST PORT USER PASSWORD
"""

import json
import sys

from onvif import ONVIFCamera

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
try:
    cam = ONVIFCamera(host, port, user, password)
    info = cam.devicemgmt.GetDeviceInformation()
    out["model"] = info.Model
    media = cam.create_media_service()
    token = media.GetProfiles()[0].token
    req = media.create_type("GetStreamUri")
    req.ProfileToken = token
    req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    out["stream_uri"] = media.GetStreamUri(req).Uri
    ptz = cam.create_ptz_service()
    presets = ptz.GetPresets({"ProfileToken": token})
    out["presets"] = [p.Name for p in presets]
    ptz.GotoPreset({"ProfileToken": token, "PresetToken": presets[-1].token})
    status = ptz.GetStatus({"ProfileToken": token})
    out["pan"] = status.Position.PanTilt.x
    events = cam.create_events_service()
    sub = events.CreatePullPointSubscription()
    out["subscription"] = sub.SubscriptionReference.Address._value_1
    pull = cam.create_pullpoint_service()
    msgs = pull.PullMessages({"Timeout": "PT2S", "MessageLimit": 10})
    # Legacy zeep drops the text of the mixed-content Topic element, so read the payload.
    out["event_items"] = [
        item.get("Name") + "=" + item.get("Value")
        for m in msgs.NotificationMessage
        for item in m.Message._value_1.iter("{*}SimpleItem")
    ]
except Exception as exc:  # report any failure as data for the test to show
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
