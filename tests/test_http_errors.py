"""No route, or no such method on a route: the error shape of the surface asked, like every error."""

from __future__ import annotations

from tests.conftest import Api


async def test_an_unknown_path_is_a_clarion_404(api: Api) -> None:
    response = await api.client.get("/nowhere")
    assert (response.status_code, response.json()) == (404, {"error": "not_found", "message": "Not found"})


async def test_a_wrong_method_is_a_clarion_405_with_allow(api: Api) -> None:
    response = await api.client.delete("/sdk/v1/subscribers")
    assert (response.status_code, response.json()) == (
        405,
        {"error": "method_not_allowed", "message": "Method Not Allowed"},
    )
    assert response.headers["allow"] == "POST"


async def test_the_gravitec_surface_keeps_its_vendor_shape(api: Api) -> None:
    response = await api.client.get("/api/v3/nowhere")
    assert (response.status_code, response.json()) == (
        404,
        {"httpStatus": "NOT_FOUND", "error": "Not Found", "errorDescription": "Not found"},
    )
    response = await api.client.put("/api/v3/push")
    assert (response.status_code, response.json()) == (
        405,
        {
            "httpStatus": "METHOD_NOT_ALLOWED",
            "error": "Method Not Allowed",
            "errorDescription": "Method Not Allowed",
        },
    )
