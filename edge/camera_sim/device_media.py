"""ONVIF Device and Media service operations of the simulated camera (the Profile S subset).

Each handler returns the XML of the response body element. Replies follow the ONVIF WSDL
closely enough for strict clients (zeep-based onvif-zeep and onvif-zeep-async).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edge.camera_sim.soap import Request, SoapFault

if TYPE_CHECKING:
    from edge.camera_sim.server import CameraSim

PROFILE = "profile_1"
OUT_W, OUT_H = 640, 480


def get_system_date_and_time(_sim: CameraSim, _req: Request) -> str:
    now = datetime.now(UTC)
    return (
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
        f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
        f"<tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>{now.year}</tt:Year>"
        f"<tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day></tt:Date>"
        "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def get_device_information(sim: CameraSim, _req: Request) -> str:
    return (
        "<tds:GetDeviceInformationResponse><tds:Manufacturer>TourPulse</tds:Manufacturer>"
        "<tds:Model>SimPTZ-1</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{sim.serial}</tds:SerialNumber><tds:HardwareId>sim</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


def get_capabilities(sim: CameraSim, _req: Request) -> str:
    b = sim.base_url
    return (
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"<tt:Device><tt:XAddr>{b}/onvif/device_service</tt:XAddr></tt:Device>"
        f"<tt:Events><tt:XAddr>{b}/onvif/events_service</tt:XAddr>"
        "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
        "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
        "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
        "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        f"<tt:Media><tt:XAddr>{b}/onvif/media_service</tt:XAddr><tt:StreamingCapabilities>"
        "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
        "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
        f"<tt:PTZ><tt:XAddr>{b}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
        "</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


def get_services(sim: CameraSim, _req: Request) -> str:
    services = [
        ("http://www.onvif.org/ver10/device/wsdl", "device_service", 2),
        ("http://www.onvif.org/ver10/media/wsdl", "media_service", 2),
        ("http://www.onvif.org/ver20/ptz/wsdl", "ptz_service", 2),
        ("http://www.onvif.org/ver10/events/wsdl", "events_service", 2),
    ]
    items = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
        f"<tds:XAddr>{sim.base_url}/onvif/{path}</tds:XAddr><tds:Version>"
        f"<tt:Major>{major}</tt:Major><tt:Minor>0</tt:Minor></tds:Version></tds:Service>"
        for ns, path, major in services
    )
    return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"


def get_scopes(_sim: CameraSim, _req: Request) -> str:
    return (
        "<tds:GetScopesResponse><tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef>"
        "<tt:ScopeItem>onvif://www.onvif.org/type/ptz</tt:ScopeItem></tds:Scopes>"
        "</tds:GetScopesResponse>"
    )


def _profile(sim: CameraSim) -> str:
    return (
        f'<trt:Profiles token="{PROFILE}" fixed="true"><tt:Name>main</tt:Name>'
        '<tt:VideoSourceConfiguration token="vsc_1"><tt:Name>vsc</tt:Name>'
        "<tt:UseCount>1</tt:UseCount><tt:SourceToken>vs_1</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="{sim.scene.width}" height="{sim.scene.height}"/>'
        "</tt:VideoSourceConfiguration>"
        '<tt:VideoEncoderConfiguration token="vec_1"><tt:Name>h264</tt:Name>'
        "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{OUT_W}</tt:Width><tt:Height>{OUT_H}</tt:Height>"
        "</tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl>"
        f"<tt:FrameRateLimit>{int(sim.scene.fps)}</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>700</tt:BitrateLimit>"
        f"</tt:RateControl><tt:H264><tt:GovLength>{int(sim.scene.fps)}</tt:GovLength>"
        "<tt:H264Profile>Baseline</tt:H264Profile></tt:H264>"
        "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
        '<tt:AudioEncoderConfiguration token="aec_1"><tt:Name>g711</tt:Name>'
        "<tt:UseCount>1</tt:UseCount><tt:Encoding>G711</tt:Encoding>"
        "<tt:Bitrate>64</tt:Bitrate><tt:SampleRate>8</tt:SampleRate>"
        "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:AudioEncoderConfiguration>"
        '<tt:PTZConfiguration token="ptz_1"><tt:Name>ptz</tt:Name><tt:UseCount>1</tt:UseCount>'
        "<tt:NodeToken>node_1</tt:NodeToken></tt:PTZConfiguration></trt:Profiles>"
    )


def get_profiles(sim: CameraSim, _req: Request) -> str:
    return f"<trt:GetProfilesResponse>{_profile(sim)}</trt:GetProfilesResponse>"


def _check_profile(req: Request) -> None:
    token = req.text("ProfileToken")
    if token != PROFILE:
        raise SoapFault("ter:NoProfile", f"no media profile {token!r}")


def _media_uri(uri: str) -> str:
    return (
        f"<trt:MediaUri><tt:Uri>{uri}</tt:Uri><tt:InvalidAfterConnect>false"
        "</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
        "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>"
    )


def get_stream_uri(sim: CameraSim, req: Request) -> str:
    _check_profile(req)
    return f"<trt:GetStreamUriResponse>{_media_uri(sim.rtsp_url)}</trt:GetStreamUriResponse>"


def get_snapshot_uri(sim: CameraSim, req: Request) -> str:
    _check_profile(req)
    uri = f"{sim.base_url}/snapshot.jpg"
    return f"<trt:GetSnapshotUriResponse>{_media_uri(uri)}</trt:GetSnapshotUriResponse>"


def get_video_sources(sim: CameraSim, _req: Request) -> str:
    return (
        '<trt:GetVideoSourcesResponse><trt:VideoSources token="vs_1">'
        f"<tt:Framerate>{sim.scene.fps}</tt:Framerate><tt:Resolution>"
        f"<tt:Width>{sim.scene.width}</tt:Width><tt:Height>{sim.scene.height}</tt:Height>"
        "</tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>"
    )
