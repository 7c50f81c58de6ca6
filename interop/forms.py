from django import forms

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class ClinicImportUploadForm(forms.Form):
    file = forms.FileField(
        label="Spreadsheet (CSV or XLSX)",
        help_text="One row per patient: the pump and its last refill. Nothing is saved until you confirm.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".xlsx", ".xlsm", ".txt")):
            raise forms.ValidationError("Upload a .csv or .xlsx file.")
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is over 10 MB: split it.")
        return upload
