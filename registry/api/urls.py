from django.urls import path

from registry.api import uploads, views

app_name = "api"

M = "models/<str:model_id>"
V = f"{M}/versions/<int:number>"
W = "contexts/<slug:ctx>/webhooks/<str:webhook_id>"

urlpatterns = [
    path("contexts/", views.ContextListView.as_view(), name="context-list"),
    path("contexts/<slug:ctx>/", views.ContextDetailView.as_view(), name="context-detail"),
    path("contexts/<slug:ctx>/members/", views.MemberListView.as_view(), name="member-list"),
    path("contexts/<slug:ctx>/members/<str:name>/", views.MemberDetailView.as_view(), name="member-detail"),
    path("contexts/<slug:ctx>/groups/<str:name>/", views.GroupMemberDetailView.as_view(), name="group-member-detail"),
    path("contexts/<slug:ctx>/models/", views.ModelListView.as_view(), name="model-list"),
    path("contexts/<slug:ctx>/records/", views.RecordListView.as_view(), name="record-list"),
    path("contexts/<slug:ctx>/audit/", views.AuditListView.as_view(), name="audit-list"),
    path("contexts/<slug:ctx>/trusted-imports/", views.TrustedImportListView.as_view(), name="trusted-import-list"),
    path("contexts/<slug:ctx>/trusted-imports/<str:name>/", views.TrustedImportDetailView.as_view(),
         name="trusted-import-detail"),
    path("contexts/<slug:ctx>/webhooks/", views.WebhookListView.as_view(), name="webhook-list"),
    path(f"{W}/", views.WebhookDetailView.as_view(), name="webhook-detail"),
    path(f"{W}/test/", views.WebhookTestView.as_view(), name="webhook-test"),
    path(f"{W}/rotate-secret/", views.WebhookRotateSecretView.as_view(), name="webhook-rotate-secret"),
    path(f"{W}/deliveries/", views.WebhookDeliveryListView.as_view(), name="webhook-delivery-list"),
    path("sso-rules/", views.SsoRuleListView.as_view(), name="sso-rule-list"),
    path("sso-rules/<str:rule_id>/", views.SsoRuleDetailView.as_view(), name="sso-rule-detail"),
    path("records/<str:record_id>/", views.RecordDetailView.as_view(), name="record-detail"),
    path(f"{M}/", views.ModelDetailView.as_view(), name="model-detail"),
    path(f"{M}/versions/", views.VersionListView.as_view(), name="version-list"),
    path(f"{M}/metrics/", views.ModelMetricListView.as_view(), name="model-metric-list"),
    path(f"{M}/metrics/across-versions/", views.MetricAcrossVersionsView.as_view(), name="metric-across-versions"),
    path(f"{V}/", views.VersionDetailView.as_view(), name="version-detail"),
    path(f"{V}/publish/", views.VersionPublishView.as_view(), name="version-publish"),
    path(f"{V}/metrics/", views.MetricListView.as_view(), name="metric-list"),
    path(f"{V}/manifest/", views.ManifestView.as_view(), name="version-manifest"),
    path(f"{V}/tamper-reports/", views.TamperReportView.as_view(), name="tamper-report"),
    path(f"{V}/formats/", views.FormatListView.as_view(), name="format-list"),
    path(f"{V}/formats/<str:kind>/", views.FormatDetailView.as_view(), name="format-detail"),
    path(f"{V}/formats/<str:kind>/approve-imports/", views.FormatApproveImportsView.as_view(),
         name="format-approve-imports"),
    path(f"{V}/formats/<str:kind>/file", views.FormatFileView.as_view(), name="format-file"),
    path(f"{V}/formats/<str:kind>/uploads/", uploads.UploadStartView.as_view(), name="upload-start"),
    path("uploads/<str:upload_id>/", uploads.UploadDetailView.as_view(), name="upload-detail"),
    path("uploads/<str:upload_id>/parts/", uploads.UploadPartsView.as_view(), name="upload-parts"),
    path("uploads/<str:upload_id>/complete/", uploads.UploadCompleteView.as_view(), name="upload-complete"),
    path(f"{M}/aliases/", views.AliasListView.as_view(), name="alias-list"),
    path(f"{M}/aliases/<str:alias>/", views.AliasDetailView.as_view(), name="alias-detail"),
    path(f"{M}/aliases/<str:alias>/rollback/", views.AliasRollbackView.as_view(), name="alias-rollback"),
]
