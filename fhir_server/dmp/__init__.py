"""The DMP export: a filed report document sent toward the patient's shared medical record."""
